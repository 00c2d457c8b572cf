package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/data"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "compact-cli")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "compact")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building compact: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run executes the CLI and returns its exit code and stderr.
func run(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	return exitStatus(t, cmd.Run()), stderr.String()
}

// exitStatus is the exit status of a command that ended with err.
func exitStatus(t *testing.T, err error) int {
	t.Helper()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// shards tokenizes a few Go sources with the CLI itself.
func shards(t *testing.T) (train, val string) {
	t.Helper()
	out := t.TempDir()
	srcs, _ := filepath.Glob(filepath.Join(goRoot(t), "src", "strings", "*.go"))
	if len(srcs) == 0 {
		t.Skip("no Go sources under GOROOT")
	}
	args := append([]string{"tokenize", "--tokenizer", "byte", "--out", out, "--val-fraction", "0.2"}, srcs...)
	if code, stderr := run(t, nil, args...); code != 0 {
		t.Fatalf("tokenize exit %d: %s", code, stderr)
	}
	return filepath.Join(out, "train_*.bin"), filepath.Join(out, "val_*.bin")
}

func smallRun(train, val string) []string {
	return []string{"--device", "cpu",
		"--set", "model.vocab_size=257", "--set", "model.hidden_size=32", "--set", "model.intermediate_size=64",
		"--set", "model.num_layers=2", "--set", "model.num_heads=2", "--set", "model.num_kv_heads=2",
		"--set", "model.max_seq_len=32", "--set", "train.seq_len=32", "--set", "train.micro_batch=4",
		"--set", "train.log_every=1", "--set", "train.eval_every=4", "--set", "train.eval_batches=2",
		"--set", "train.checkpoint_every=2", "--set", "train.keep_checkpoints=2", "--set", "compact.update_gap=3",
		"--set", "data.tokenizer=byte", "--set", "data.train=" + train, "--set", "data.val=" + val}
}

func TestBadInputExitsTwo(t *testing.T) {
	dir := t.TempDir()
	train, val := shards(t)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("train:\n  lrate: 1\n"), 0o644)
	broken := filepath.Join(dir, "broken.yaml")
	os.WriteFile(broken, []byte("model: [\n"), 0o644)
	truncated := filepath.Join(dir, "truncated.bin")
	good, _ := filepath.Glob(train)
	raw, _ := os.ReadFile(good[0])
	os.WriteFile(truncated, raw[:len(raw)-7], 0o644)
	junk := filepath.Join(dir, "junk.bin")
	os.WriteFile(junk, bytes.Repeat([]byte{7}, 4096), 0o644)
	jsonl := filepath.Join(dir, "docs.jsonl")
	os.WriteFile(jsonl, []byte("{\"text\": \"ok\"}\n{\"text\": \n"), 0o644)
	out := filepath.Join(dir, "out")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"pretrain", "--config", bad, "--out", out}, "train.lrate"},
		{[]string{"pretrain", "--config", broken, "--out", out}, "broken.yaml"},
		{[]string{"pretrain", "--config", filepath.Join(dir, "missing.yaml"), "--out", out}, "missing.yaml"},
		{[]string{"pretrain", "--out", out, "--set", "model.num_heads=7"}, "model.num_heads"},
		{[]string{"pretrain", "--out", out, "--set", "compact.rank=100000"}, "compact.rank"},
		{[]string{"pretrain", "--out", out, "--set", "no.such=1"}, "no.such"},
		{[]string{"pretrain", "--out", out, "--device", "tpu"}, "train.device"},
		{[]string{"pretrain", "--out", out, "--steps", "-3"}, "--steps"},
		{[]string{"pretrain"}, "--out"},
		{[]string{"pretrain", "--bogus"}, "bogus"},
		{[]string{"frobnicate"}, "frobnicate"},
		{[]string{"pretrain", "extra"}, "extra"},
		{[]string{"tokenize"}, "requires at least 1 arg"},
		{[]string{"pretrain", "--steps"}, "flag needs an argument"},
		{[]string{"pretrain", "--steps", "many"}, "many"},
		{append([]string{"pretrain", "--out", out}, smallRun(truncated, val)...), "truncated.bin"},
		{append([]string{"pretrain", "--out", out}, smallRun(junk, val)...), "junk.bin"},
		{[]string{"tokenize", "--out", out, filepath.Join(dir, "nothing*.txt")}, "nothing"},
		{[]string{"tokenize", "--out", out, jsonl}, "docs.jsonl:2"},
		{[]string{"tokenize", "--out", out, "--tokenizer", "klingon", jsonl}, "klingon"},
	}
	for _, c := range cases {
		code, stderr := run(t, nil, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "panic") {
			t.Errorf("compact %s: exit %d, stderr %q; want exit 2 naming %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
}

type metric struct {
	Step     int      `json:"step"`
	Loss     float64  `json:"loss"`
	LR       float64  `json:"lr"`
	Tokens   int64    `json:"tokens"`
	GradNorm float64  `json:"grad_norm"`
	ValLoss  *float64 `json:"val_loss"`
}

func readMetrics(t *testing.T, dir string) []metric {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []metric
	for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var m metric
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// A run SIGKILLed in the middle of writing a checkpoint leaves the previous
// checkpoint intact; --resume continues from it and logs exactly the
// metrics of an uninterrupted run.
func TestKillDuringCheckpointThenResume(t *testing.T) {
	train, val := shards(t)
	dir := t.TempDir()
	full, crashed := filepath.Join(dir, "full"), filepath.Join(dir, "crashed")
	base := append([]string{"pretrain", "--steps", "8"}, smallRun(train, val)...)
	if code, stderr := run(t, nil, append(base, "--out", full)...); code != 0 {
		t.Fatalf("uninterrupted run: exit %d: %s", code, stderr)
	}
	code, _ := run(t, []string{"COMPACT_FAULT_KILL_CHECKPOINT=6"}, append(base, "--out", crashed)...)
	if code != -1 { // killed by a signal
		t.Fatalf("the fault hook did not kill the run (exit %d)", code)
	}
	ckpts := filepath.Join(crashed, "checkpoints")
	if _, err := os.Stat(filepath.Join(ckpts, "step-0000004", "model.safetensors")); err != nil {
		t.Fatalf("previous checkpoint damaged: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ckpts, "step-0000006")); err == nil {
		t.Fatalf("a half-written checkpoint was published")
	}
	if code, stderr := run(t, nil, append(base, "--out", crashed, "--resume")...); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	a, b := readMetrics(t, full), readMetrics(t, crashed)
	if len(a) != len(b) {
		t.Fatalf("%d metric lines after resume, %d uninterrupted", len(b), len(a))
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Step != y.Step || x.Loss != y.Loss || x.LR != y.LR || x.Tokens != y.Tokens || x.GradNorm != y.GradNorm ||
			(x.ValLoss == nil) != (y.ValLoss == nil) || (x.ValLoss != nil && *x.ValLoss != *y.ValLoss) {
			t.Fatalf("step %d differs: %+v vs %+v", x.Step, y, x)
		}
	}
	// A corrupt newest checkpoint is refused with a clear error, and left as it is.
	newest := filepath.Join(ckpts, "step-0000008", "model.safetensors")
	raw, _ := os.ReadFile(newest)
	os.WriteFile(newest, raw[:len(raw)/2], 0o644)
	code, stderr := run(t, nil, append(base, "--out", crashed, "--resume")...)
	if code != 2 || !strings.Contains(stderr, "model.safetensors") {
		t.Fatalf("resume from a truncated checkpoint: exit %d: %s", code, stderr)
	}
	if after, _ := os.ReadFile(newest); len(after) != len(raw)/2 {
		t.Fatalf("the failed resume modified the checkpoint")
	}
}

// memreport on the CPU: the prediction equals the measurement exactly (the
// CPU backend allocates nothing the meter does not see), the JSON carries
// every variant, the PNG is written, and bad flags exit 2.
func TestMemreport(t *testing.T) {
	dir := t.TempDir()
	png := filepath.Join(dir, "mem.png")
	args := []string{"memreport", "--device", "cpu", "--set", "model.vocab_size=512", "--set", "model.hidden_size=64",
		"--set", "model.intermediate_size=128", "--set", "model.num_layers=2", "--set", "model.num_heads=2",
		"--set", "model.num_kv_heads=2", "--set", "train.seq_len=64", "--set", "model.max_seq_len=64",
		"--set", "data.tokenizer=byte", "--batch", "2", "--memory", "64MiB", "--reserve", "0", "--variants", "full+none,r0.25+none,r0.25+block",
		"--measure", "--json", "--plot", png}
	cmd := exec.Command(binary, args...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("memreport: %v", err)
	}
	var rep struct {
		Rows []struct {
			Variant      struct{ Name string }
			Predicted    map[string]int64 `json:"predicted_bytes"`
			Measured     map[string]int64 `json:"measured_bytes"`
			MaxBatch     int              `json:"max_micro_batch"`
			ErrorPercent float64          `json:"error_percent"`
		}
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("memreport JSON: %v\n%s", err, out)
	}
	if len(rep.Rows) != 3 {
		t.Fatalf("%d variants, want 3", len(rep.Rows))
	}
	for _, r := range rep.Rows {
		if r.ErrorPercent != 0 || r.Predicted["total"] != r.Measured["total"] {
			t.Errorf("%s: predicted %d, measured %d", r.Variant.Name, r.Predicted["total"], r.Measured["total"])
		}
		if r.MaxBatch < 2 {
			t.Errorf("%s: max micro-batch %d in 64 MiB", r.Variant.Name, r.MaxBatch)
		}
	}
	if st, err := os.Stat(png); err != nil || st.Size() < 1000 {
		t.Errorf("plot: %v", err)
	}
	// The lean variants measure as predicted too: master-free weights and
	// bf16 moments change what the optimizer allocates, nothing else.
	lean := append(args[:len(args)-6:len(args)-6], "--variants", "r0.25-bf16_sr+none,full-bf16_sr-bf16+block", "--measure", "--json")
	out, err = exec.Command(binary, lean...).Output()
	if err != nil {
		t.Fatalf("memreport lean: %v", err)
	}
	rep.Rows = nil
	if err := json.Unmarshal(out, &rep); err != nil || len(rep.Rows) != 2 {
		t.Fatalf("memreport lean JSON (%v): %s", err, out)
	}
	for _, r := range rep.Rows {
		if r.Predicted["total"] != r.Measured["total"] || r.Predicted["master"] != 0 {
			t.Errorf("%s: predicted %v, measured %v", r.Variant.Name, r.Predicted, r.Measured)
		}
	}
	for _, bad := range [][]string{{"memreport", "--memory", "lots"}, {"memreport", "--ranks", "0,x"}, {"memreport", "--variants", "nothing"}} {
		if code, stderr := run(t, nil, bad...); code != 2 {
			t.Errorf("compact %v: exit %d: %s", bad, code, stderr)
		}
	}
}

// memreport --gpus N predicts the per-GPU peak of a job: under ZeRO-1 (the
// default) the optimizer state falls to about 1/N, without it stays whole;
// the title says which. --measure, which runs one process, refuses N > 1.
func TestMemreportGPUs(t *testing.T) {
	base := []string{"memreport", "--device", "cpu", "--set", "model.vocab_size=512", "--set", "model.hidden_size=64",
		"--set", "model.intermediate_size=128", "--set", "model.num_layers=4", "--set", "model.num_heads=2",
		"--set", "model.num_kv_heads=2", "--set", "train.seq_len=64", "--set", "model.max_seq_len=64",
		"--set", "data.tokenizer=byte", "--batch", "2", "--memory", "64MiB", "--variants", "full+none", "--json"}
	optimizer := func(extra ...string) (int64, string) {
		t.Helper()
		out, err := exec.Command(binary, append(append([]string{}, base...), extra...)...).Output()
		if err != nil {
			t.Fatalf("memreport %v: %v", extra, err)
		}
		var rep struct {
			Title string
			Rows  []struct {
				Predicted map[string]int64 `json:"predicted_bytes"`
			}
		}
		if err := json.Unmarshal(out, &rep); err != nil || len(rep.Rows) != 1 {
			t.Fatalf("memreport %v JSON (%v): %s", extra, err, out)
		}
		return rep.Rows[0].Predicted["optimizer"], rep.Title
	}
	one, _ := optimizer()
	four, title := optimizer("--gpus", "4")
	if !strings.Contains(title, "per GPU of 4") || !strings.Contains(title, "train.zero 1") {
		t.Errorf("title %q does not say what it counts", title)
	}
	if four >= one/2 || four < one/4 {
		t.Errorf("optimizer state per GPU of 4: %d bytes, one GPU's is %d", four, one)
	}
	if whole, title := optimizer("--gpus", "4", "--set", "train.zero=0"); whole != one || !strings.Contains(title, "train.zero 0") {
		t.Errorf("train.zero 0 on 4 GPUs: %d bytes of optimizer state (title %q), one GPU's is %d", whole, title, one)
	}
	for _, bad := range [][]string{{"--gpus", "0"}, {"--gpus", "2", "--measure"}, {"--set", "train.zero=2"}} {
		if code, stderr := run(t, nil, append(append([]string{}, base...), bad...)...); code != 2 {
			t.Errorf("memreport %v: exit %d: %s", bad, code, stderr)
		}
	}
}

// goRoot is the Go distribution whose sources the tests tokenize.
func goRoot(t *testing.T) string {
	t.Helper()
	d, err := data.GoRoot()
	if err != nil {
		t.Skip(err)
	}
	return d
}
