package config

import (
	"strings"
	"testing"
)

func TestHealthConfigErrorsNameTheKey(t *testing.T) {
	for _, set := range []string{"train.on_instability=panic", "train.health.window=0", "train.health.spike=-1",
		"train.health.rise=0", "train.health.grad_rise=1", "train.health.lr_factor=1", "train.health.max_rollbacks=-1"} {
		_, err := Load("", []string{set})
		key, _, _ := strings.Cut(set, "=")
		if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), key) {
			t.Errorf("--set %s: got %v, want a usage error naming %s", set, err, key)
		}
	}
}
