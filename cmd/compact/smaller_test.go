package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/charts"
)

// Issue 21 item 6: eval --json names the loss as its text and
// metrics.jsonl do (val_loss; it said loss); sample --max-tokens beyond
// the model's positions generates them all (it stopped at 128 silently)
// and says how.
func TestEvalJSONAndLongSample(t *testing.T) {
	out, _ := trainedRun(t)
	code, text, stderr := runAll(t, nil, "eval", "--checkpoint", out, "--batches", "1")
	if code != 0 || !strings.Contains(text, "val_loss ") {
		t.Fatalf("eval: exit %d: %s %s", code, text, stderr)
	}
	var ev map[string]any
	code, js, _ := runAll(t, nil, "eval", "--checkpoint", out, "--batches", "1", "--json")
	if code != 0 || json.Unmarshal([]byte(js), &ev) != nil {
		t.Fatalf("eval --json: exit %d: %s", code, js)
	}
	if _, ok := ev["val_loss"]; !ok || ev["loss"] != nil {
		t.Errorf("eval --json keys: %v, want val_loss as the text says", ev)
	}
	// The small run has 32 positions; greedy decoding of 200 tokens.
	code, sample, stderr := runAll(t, nil, "sample", "--checkpoint", out, "--prompt", "package ", "--max-tokens", "200", "--temperature", "0")
	if code != 0 {
		t.Fatalf("sample: exit %d: %s", code, stderr)
	}
	if n := len(strings.TrimSuffix(sample, "\n")) - len("package "); n != 200 {
		t.Errorf("sample --max-tokens 200 on a 32-position model printed %d tokens:\n%q", n, sample)
	}
	if !strings.Contains(stderr, "context slides") || !strings.Contains(stderr, "32 positions") {
		t.Errorf("sample does not say the context slides past 32 positions: %s", stderr)
	}
}

// metricsRun writes a run directory whose metrics.jsonl has the given
// losses at a constant learning rate.
func metricsRun(t *testing.T, dir string, lr float64, losses ...float64) string {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	var b bytes.Buffer
	for i, l := range losses {
		m, _ := json.Marshal(map[string]any{"step": i + 1, "loss": l, "lr": lr, "tokens": 1000 * (i + 1),
			"tok_per_s": 1, "peak_bytes": 1, "grad_norm": 1, "elapsed_s": 1})
		b.Write(append(m, '\n'))
	}
	os.WriteFile(filepath.Join(dir, "metrics.jsonl"), b.Bytes(), 0o644)
	return dir
}

// Issue 21 item 6 and issue 22 item 5: plot labels two runs with the same
// directory name apart, labels ticks distinctly, writes the format its
// file name says (PNG bytes went into x.jpg) and refuses one it cannot
// write; a run at lr 1e30 plots instead of panicking in gonum.
func TestPlotLabelsFormatsAndHugeLR(t *testing.T) {
	root := t.TempDir()
	a := metricsRun(t, filepath.Join(root, "a", "run"), 1e-3, 2.5, 2.5004, 2.5008, 2.501)
	b := metricsRun(t, filepath.Join(root, "b", "run"), 2e-3, 2.6, 2.59, 2.58)
	huge := metricsRun(t, filepath.Join(root, "huge"), 1e30, 3, 2.9)
	jpg := filepath.Join(root, "x.jpg")
	code, stderr := run(t, nil, "plot", a, b, huge, "--out", jpg)
	if code != 0 || strings.Contains(stderr, "panic") {
		t.Fatalf("plot: exit %d: %s", code, stderr)
	}
	f, err := os.Open(jpg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := jpeg.DecodeConfig(f); err != nil {
		t.Errorf("x.jpg is not a JPEG: %v", err)
	}
	expectUsage(t, nil, "x.gif", "plot", a, "--out", filepath.Join(root, "x.gif"))
	if got := charts.RunLabels([]string{a, b, huge}); got[0] != "a/run" || got[1] != "b/run" || got[2] != "huge" {
		t.Errorf("run labels %q", got)
	}
	if ls := charts.TickLabels(2.5, 2.501); len(ls) < 2 || hasDuplicate(ls) {
		t.Errorf("ticks of 2.5..2.501 labelled %q", ls)
	}
}

func hasDuplicate(s []string) bool {
	seen := map[string]bool{}
	for _, x := range s {
		if seen[x] {
			return true
		}
		seen[x] = true
	}
	return false
}

// Issue 21 item 6: a misspelt command with flags suggests the command
// ("compact pretrian --out x" said "unknown flag: --out").
func TestMisspeltCommandSuggests(t *testing.T) {
	for _, args := range [][]string{{"pretrian", "--out", "x"}, {"pretrian"}, {"evl", "--checkpoint", "x"}} {
		root := newRootCmd()
		root.SetArgs(args)
		var buf bytes.Buffer
		root.SetOut(&buf)
		root.SetErr(&buf)
		err := root.ExecuteContext(context.Background())
		var u usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), "unknown command") || !strings.Contains(err.Error(), "Did you mean this?") {
			t.Errorf("compact %s: %v", strings.Join(args, " "), err)
		}
	}
}
