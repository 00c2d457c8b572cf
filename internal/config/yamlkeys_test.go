package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 22.9: a config of 100k unknown keys is refused at once (it took
// over a minute), naming the first one and its line; a key set twice is
// refused; a byte order mark is ignored.
func TestConfigKeysLinear(t *testing.T) {
	var b strings.Builder
	b.WriteString("train:\n  lr: 0.001\n")
	for i := range 100000 {
		fmt.Fprintf(&b, "  k%d: 1\n", i)
	}
	p := writeConfig(t, b.String())
	start := time.Now()
	_, err := Load(p, nil)
	if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), "line 3: unknown key train.k0") {
		t.Fatalf("100k unknown keys: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("100k unknown keys took %s", d)
	}

	_, err = Load(writeConfig(t, "train:\n  lr: 0.001\n  steps: 3\n  lr: 0.002\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "line 4: key train.lr is already set on line 2") {
		t.Errorf("repeated key: %v", err)
	}
	_, err = Load(writeConfig(t, "train: 5\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "train is a section") {
		t.Errorf("section as a value: %v", err)
	}
	cfg, err := Load(writeConfig(t, "\ufefftrain:\n  lr: 0.002\n"), nil)
	if err != nil || cfg.Train.LR != 0.002 {
		t.Errorf("config with a byte order mark: lr %g, %v", cfg.Train.LR, err)
	}
	cfg, err = Load(writeConfig(t, "base: &b\n  lr: 0.003\ntrain:\n  <<: *b\n"), nil)
	if err == nil {
		t.Errorf("an unknown section holding an anchor was accepted")
	}
	cfg, err = Load(writeConfig(t, "train:\n"), nil)
	if err != nil {
		t.Errorf("empty section: %v", err)
	}
}

// Issue 22.8: a FIFO as the config is refused, not waited on.
func TestConfigFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo.yaml")
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Skip(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(p, nil); done <- err }()
	select {
	case err := <-done:
		if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("FIFO config: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("loading a FIFO config blocked")
	}
	os.Remove(p)
}
