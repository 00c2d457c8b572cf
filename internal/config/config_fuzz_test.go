// Fuzz target for configuration loading: any YAML file and --set override
// either loads into a configuration that passes validation or is refused
// with a usage error; never a panic.

package config

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzConfig(f *testing.F) {
	shipped, _ := filepath.Glob(filepath.Join("..", "..", "configs", "*.yaml"))
	for _, p := range shipped {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, "train.lr=1e-3")
	}
	f.Add([]byte("train:\n  lr: .nan\n"), "train.steps=1.5")
	f.Add([]byte("model:\n  vocab_size: 1099511627776\n"), "train.seed=-1")
	f.Add([]byte("train: [1, 2]\n"), "model.max_seq_len=1e11")
	f.Add([]byte("compact:\n  rank: 0.25\n  layers: [q, k]\n"), "compact.alpha=Inf")
	f.Add([]byte(":\n\t- x"), "=")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte, override string) {
		path := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path, []string{override})
		if err != nil {
			if !IsUsage(err) {
				t.Fatalf("not a usage error: %v", err)
			}
			return
		}
		// What loads must be accepted again by its own validation.
		if err := cfg.Validate(); err != nil {
			t.Fatalf("loaded config fails validation: %v", err)
		}
	})
}
