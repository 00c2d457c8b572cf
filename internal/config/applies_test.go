package config

import (
	"strings"
	"testing"
)

// A setting another setting makes impossible is a usage error naming both
// keys (exit 2), before any work.
func TestSettingsThatContradictAreRefused(t *testing.T) {
	_, err := Load("", []string{"compact.head=true", "model.tie_embeddings=true"})
	if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), "compact.head") || !strings.Contains(err.Error(), "model.tie_embeddings") {
		t.Errorf("compact.head with tied embeddings: %v, want a usage error naming both keys", err)
	}
	cfg := Default()
	cfg.Compact.Head, cfg.Finetune.Task = true, TaskClassify
	if err := cfg.checkApplies(); err == nil || !strings.Contains(err.Error(), "compact.head") || !strings.Contains(err.Error(), "finetune.task") {
		t.Errorf("compact.head with a classifier: %v, want an error naming both keys", err)
	}
	cfg.Compact.Enabled = false // compact.* is not read at full rank: nothing to refuse
	if err := cfg.checkApplies(); err != nil {
		t.Errorf("compact.head with CompAct off: %v", err)
	}
}
