package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runAll executes the CLI and returns its exit code, stdout and stderr.
func runAll(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), stdout.String(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stdout.String(), stderr.String()
}

const tinyConfig = "../../configs/tiny.yaml"

func TestVersion(t *testing.T) {
	code, out, _ := runAll(t, nil, "--version")
	if code != 0 || !strings.HasPrefix(out, "compact ") || !strings.Contains(out, "commit ") {
		t.Errorf("--version: exit %d, %q", code, out)
	}
}

// TestConfigCommand: `compact config` prints the resolved config, and its
// output is a config file that resolves to the same output.
func TestConfigCommand(t *testing.T) {
	code, out, stderr := runAll(t, []string{"COMPACT_TRAIN_STEPS=77"}, "config", "--config", tinyConfig, "--set", "train.lr=0.0125")
	if code != 0 {
		t.Fatalf("config: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"  lr: 0.0125\n", "  steps: 77\n", "  hidden_size: 128\n", "compact:\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("config output lacks %q:\n%s", want, out)
		}
	}
	p := filepath.Join(t.TempDir(), "printed.yaml")
	os.WriteFile(p, []byte(out), 0o644)
	code, again, stderr := runAll(t, nil, "config", "--config", p)
	if code != 0 || again != out {
		t.Errorf("printed config does not resolve to itself: exit %d %s\n%s\n---\n%s", code, stderr, out, again)
	}
}

// TestConfigErrorSources reproduces the commands: each bad value is
// blamed on where it came from, with exit 2.
func TestConfigErrorSources(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	cases := []struct {
		env  []string
		args []string
		want []string
	}{
		{nil, []string{"--set", "train.lr=fast"}, []string{"--set train.lr=fast", "train.lr"}},
		{[]string{"COMPACT_TRAIN_LR=fast"}, nil, []string{"environment COMPACT_TRAIN_LR=fast"}},
		{[]string{"COMPACT_TRAIN_LRR=0.1"}, nil, []string{"COMPACT_TRAIN_LRR", "did you mean COMPACT_TRAIN_LR?"}},
		{nil, []string{"--set", "train.lrr=0.1"}, []string{"did you mean train.lr?"}},
	}
	for _, c := range cases {
		args := append([]string{"pretrain", "--config", tinyConfig, "--out", out}, c.args...)
		code, _, stderr := runAll(t, c.env, args...)
		if code != 2 {
			t.Errorf("%v %v: exit %d, want 2: %s", c.env, c.args, code, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v %v: %q does not say %q", c.env, c.args, stderr, w)
			}
		}
		if strings.Contains(stderr, "tiny.yaml") {
			t.Errorf("%v %v: blames the file: %s", c.env, c.args, stderr)
		}
		if strings.Count(stderr, "train.") > 3 {
			t.Errorf("%v %v: lists keys: %s", c.env, c.args, stderr)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused run created %s", out)
	}
}
