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

// compact.o_proj_scale scales a full-rank o_proj's update: with o_proj
// compressed (compact.layers with o) it has nothing to scale, so a value
// other than 1 is a usage error naming both keys; 1 (the default) is
// accepted, and the compressed o_proj takes compact.alpha.
func TestOProjScaleWithCompressedOProj(t *testing.T) {
	_, err := Load("", []string{"compact.layers=q,k,v,o,gate,up,down", "compact.o_proj_scale=0.5"})
	if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), "compact.o_proj_scale") || !strings.Contains(err.Error(), "compact.layers") {
		t.Errorf("o_proj_scale 0.5 with o compressed: %v, want a usage error naming both keys", err)
	}
	if _, err := Load("", []string{"compact.layers=q,k,v,o,gate,up,down"}); err != nil {
		t.Errorf("o compressed at o_proj_scale 1: %v", err)
	}
	if _, err := Load("", []string{"compact.layers=q,k,v,o,gate,up,down", "compact.o_proj_scale=0.5", "compact.enabled=false"}); err != nil {
		t.Errorf("CompAct off: %v (compact.* is not read at full rank)", err)
	}
}
