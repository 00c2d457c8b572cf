package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// jsonl writes lines of JSON objects.
func jsonl(t *testing.T, path string, n int, row func(i int) map[string]any) string {
	t.Helper()
	var sb strings.Builder
	for i := 0; i < n; i++ {
		js, _ := json.Marshal(row(i))
		sb.Write(js)
		sb.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func ftArgs(base, out string, extra ...string) []string {
	return append([]string{"finetune", "--base", base, "--out", out, "--device", "cpu",
		"--set", "train.seq_len=32", "--set", "train.micro_batch=4", "--set", "train.log_every=1",
		"--set", "train.eval_every=3", "--set", "train.checkpoint_every=3", "--set", "compact.rank=4",
		"--set", "compact.alpha=2", "--set", "compact.update_gap=500"}, extra...)
}

func evalJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"eval", "--json"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("eval %v: %v", args, err)
	}
	var r map[string]any
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("eval output %q: %v", out, err)
	}
	return r
}

// TestFinetuneTasksEvalSample pretrains a few steps, fine-tunes it with each
// task (CompAct rank 4), evaluates the results (the same val_loss and
// val_accuracy as the run's last metrics line), resumes one, and samples.
func TestFinetuneTasksEvalSample(t *testing.T) {
	train, val := shards(t)
	dir := t.TempDir()
	pre := filepath.Join(dir, "pre")
	if code, stderr := run(t, nil, append([]string{"pretrain", "--steps", "3", "--out", pre}, smallRun(train, val)...)...); code != 0 {
		t.Fatalf("pretrain: exit %d: %s", code, stderr)
	}
	comp := jsonl(t, filepath.Join(dir, "comp.jsonl"), 30, func(i int) map[string]any {
		return map[string]any{"prompt": fmt.Sprintf("%d+%d=", i, i), "completion": fmt.Sprint(2 * i)}
	})
	cls := jsonl(t, filepath.Join(dir, "cls.jsonl"), 30, func(i int) map[string]any {
		return map[string]any{"text": fmt.Sprintf("item %d is %s", i, []string{"red", "blue", "green"}[i%3]), "label": i % 3}
	})
	runs := []struct {
		name string
		args []string
	}{
		{"causal", []string{"--set", "data.train=" + train, "--set", "data.val=" + val, "--set", "train.eval_batches=2"}},
		{"completion", []string{"--set", "finetune.task=completion", "--set", "data.train=" + comp, "--set", "finetune.val_fraction=0.2"}},
		{"classify", []string{"--set", "finetune.task=classify", "--set", "finetune.num_labels=3", "--set", "data.train=" + cls,
			"--set", "finetune.val_fraction=0.2"}},
	}
	for _, r := range runs {
		out := filepath.Join(dir, r.name)
		if code, stderr := run(t, nil, append(ftArgs(pre, out, "--steps", "6"), r.args...)...); code != 0 {
			t.Fatalf("%s: exit %d: %s", r.name, code, stderr)
		}
		ms := readMetrics(t, out)
		last := ms[len(ms)-1]
		if last.Step != 6 || last.ValLoss == nil {
			t.Fatalf("%s: last metrics line %+v", r.name, last)
		}
		ev := evalJSON(t, "--checkpoint", out)
		if l := ev["val_loss"].(float64); math.Abs(l-*last.ValLoss) > 1e-9*math.Abs(l) {
			t.Errorf("%s: eval loss %v, the run's val_loss %v", r.name, l, *last.ValLoss)
		}
		raw, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
		hasAcc := strings.Contains(string(raw), `"val_accuracy"`)
		if _, ok := ev["accuracy"]; ok != (r.name == "classify") || hasAcc != (r.name == "classify") {
			t.Errorf("%s: accuracy in eval %v, in metrics %v", r.name, ok, hasAcc)
		}
		cfg, _ := os.ReadFile(filepath.Join(out, "checkpoints", "step-0000006", "config.json"))
		if isCls := strings.Contains(string(cfg), "LlamaForSequenceClassification"); isCls != (r.name == "classify") {
			t.Errorf("%s: config.json architectures wrong:\n%s", r.name, cfg)
		}
	}
	// --resume continues the completion run from step 6 to 8.
	out := filepath.Join(dir, "completion")
	if code, stderr := run(t, nil, append(ftArgs(pre, out, "--steps", "8", "--resume"), runs[1].args...)...); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	} else if !strings.Contains(stderr, "resumed from") {
		t.Errorf("resume did not resume: %s", stderr)
	}
	cmd := exec.Command(binary, "sample", "--checkpoint", pre, "--prompt", "func ", "--max-tokens", "10", "--seed", "1", "--top-k", "5", "--top-p", "0.9")
	a, err := cmd.Output()
	if err != nil || !strings.HasPrefix(string(a), "func ") {
		t.Fatalf("sample: %q %v", a, err)
	}
	b, _ := exec.Command(binary, "sample", "--checkpoint", pre, "--prompt", "func ", "--max-tokens", "10", "--seed", "1", "--top-k", "5", "--top-p", "0.9").Output()
	if string(a) != string(b) {
		t.Errorf("sampling is not deterministic in --seed: %q vs %q", a, b)
	}
	// Bad input exits 2.
	for _, bad := range [][]string{
		append(ftArgs(pre, filepath.Join(dir, "bad1")), "--set", "model.hidden_size=64"),
		append(ftArgs(pre, filepath.Join(dir, "bad2")), "--set", "finetune.task=classify", "--set", "data.train="+cls, "--set", "finetune.val_fraction=0.2"),
		append(ftArgs(pre, filepath.Join(dir, "bad3")), "--set", "finetune.task=completion", "--set", "data.train="+cls, "--set", "finetune.val_fraction=0.2"),
		ftArgs(filepath.Join(dir, "nonexistent"), filepath.Join(dir, "bad4")),
		{"sample", "--checkpoint", filepath.Join(dir, "classify"), "--prompt", "x"},
		{"eval", "--checkpoint", filepath.Join(dir, "nonexistent")},
	} {
		if code, stderr := run(t, nil, bad...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", bad, code, stderr)
		}
	}
}
