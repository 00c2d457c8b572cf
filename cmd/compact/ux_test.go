package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"image/png"
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

// TestRunLogAndSummary: piped output carries every metric with elapsed time
// and ETA and ends with a summary; on a terminal the same lines print above
// the progress bar (each on its own line, never on the bar's), and the
// summary follows. A run without --config starts from the tiny config.
func TestRunLogAndSummary(t *testing.T) {
	train, val := shards(t)
	dir := t.TempDir()
	args := append([]string{"pretrain", "--steps", "4", "--out", filepath.Join(dir, "piped"), "--set", "train.eval_every=2"}, smallRun(train, val)...)
	code, _, stderr := runAll(t, nil, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"no --config: using the built-in configs/tiny.yaml", "step 1/4 loss", "grad_norm", "val_loss",
		"elapsed ", "eta ", "done: 4 steps (1..4), 512 tokens", "peak memory ", "checkpoint " + filepath.Join(dir, "piped", "checkpoints", "step-0000004")} {
		if !strings.Contains(stderr, want) {
			t.Errorf("piped output lacks %q:\n%s", want, stderr)
		}
	}
	// The tiny default: lr and warmup come from configs/tiny.yaml.
	raw, err := os.ReadFile(filepath.Join(dir, "piped", "checkpoints", "step-0000004", "trainer_state.json"))
	var st struct {
		Config map[string]map[string]any `json:"config"`
	}
	if err == nil {
		err = json.Unmarshal(raw, &st)
	}
	if err != nil || st.Config["train"]["lr"] != 0.003 || st.Config["train"]["warmup_ratio"] != 0.05 {
		t.Errorf("run without --config did not use tiny.yaml (%v): %v", err, st.Config["train"])
	}

	// compact plot: a PNG of the run's curves; a directory without metrics is bad input.
	png := filepath.Join(dir, "runs.png")
	if code, _, stderr := runAll(t, nil, "plot", filepath.Join(dir, "piped"), filepath.Join(dir, "piped"), "--out", png); code != 0 {
		t.Fatalf("plot: exit %d: %s", code, stderr)
	}
	if f, err := os.Open(png); err != nil {
		t.Errorf("plot: %v", err)
	} else if cfg, err := pngDecodeConfig(f); err != nil || cfg.Width < 400 || cfg.Height < 400 {
		t.Errorf("plot: not a PNG of a readable size: %v %+v", err, cfg)
	}
	if code, _, stderr := runAll(t, nil, "plot", filepath.Join(dir, "none"), "--out", png); code != 2 || !strings.Contains(stderr, "none") {
		t.Errorf("plot of a missing run: exit %d: %s", code, stderr)
	}

	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) to give the run a terminal")
	}
	targs := append([]string{binary, "pretrain", "--steps", "4", "--out", filepath.Join(dir, "tty"), "--set", "train.eval_every=2"}, smallRun(train, val)...)
	for i, a := range targs {
		targs[i] = shellQuote(a)
	}
	out, err := exec.Command(script, "-qec", strings.Join(targs, " "), "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("on a terminal: %v\n%s", err, out)
	}
	tty := string(out)
	if !strings.Contains(tty, "%") || !strings.Contains(tty, "(4/4)") && !strings.Contains(tty, "(3/4)") {
		t.Errorf("no progress bar on a terminal:\n%q", tty)
	}
	for _, want := range []string{"step 4/4 loss", "val_loss", "grad_norm", "done: 4 steps"} {
		if !strings.Contains(tty, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, tty)
		}
	}
	// Every log line starts at the beginning of a line: after a newline or
	// after the carriage return that cleared the bar, never after bar text.
	for _, line := range strings.Split(tty, "\n") {
		if i := strings.Index(line, "done: "); i >= 0 {
			line = line[:i+len("done: ")] // the summary names the checkpoint too
		}
		for _, tag := range []string{"checkpoint /", "step ", "done: "} {
			i := strings.Index(line, tag)
			if i < 0 {
				continue
			}
			before := line[:i]
			if j := strings.LastIndex(before, "\r"); j >= 0 {
				before = before[j+1:]
			}
			if strings.TrimSpace(before) != "" {
				t.Errorf("%q printed on the bar's line: %q", tag, line)
			}
		}
	}
}

// TestInterruptMidStep: SIGINT in the middle of a step abandons it, writes
// the checkpoint of the last complete step, exits 130 and prints the resume
// command; resuming gives exactly the uninterrupted run. A second SIGINT
// exits at once without writing anything.
func TestInterruptMidStep(t *testing.T) {
	train, val := shards(t)
	dir := t.TempDir()
	full, cut, twice := filepath.Join(dir, "full"), filepath.Join(dir, "cut"), filepath.Join(dir, "twice")
	base := append([]string{"pretrain", "--config", tinyConfig, "--steps", "6", "--set", "train.checkpoint_every=100",
		"--set", "train.eval_every=3"}, smallRun(train, val)...)
	if code, _, stderr := runAll(t, nil, append(base, "--out", full)...); code != 0 {
		t.Fatalf("uninterrupted: exit %d: %s", code, stderr)
	}
	code, _, stderr := runAll(t, []string{InterruptEnvForTest + "=4"}, append(base, "--out", cut)...)
	if code != 130 {
		t.Fatalf("interrupted run: exit %d, want 130: %s", code, stderr)
	}
	for _, want := range []string{"interrupted at step 3", "step-0000003", "resume with: ", " --out " + cut, "--resume"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("interrupt output lacks %q:\n%s", want, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(cut, "checkpoints", "step-0000004")); err == nil {
		t.Errorf("the abandoned step 4 was checkpointed")
	}
	if code, _, stderr := runAll(t, nil, append(base, "--out", cut, "--resume")...); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	a, b := readMetrics(t, full), readMetrics(t, cut)
	if len(a) != len(b) {
		t.Fatalf("%d metric lines after resume, %d uninterrupted", len(b), len(a))
	}
	for i := range a {
		if a[i].Step != b[i].Step || a[i].Loss != b[i].Loss || a[i].GradNorm != b[i].GradNorm {
			t.Errorf("step %d: %+v after interrupt+resume, %+v uninterrupted", a[i].Step, b[i], a[i])
		}
	}
	wa, _ := os.ReadFile(filepath.Join(full, "checkpoints", "step-0000006", "model.safetensors"))
	wb, _ := os.ReadFile(filepath.Join(cut, "checkpoints", "step-0000006", "model.safetensors"))
	if len(wa) == 0 || !bytes.Equal(wa, wb) {
		t.Errorf("weights after interrupt+resume differ from the uninterrupted run")
	}

	code, _, stderr = runAll(t, []string{InterruptEnvForTest + "=4,2"}, append(base, "--out", twice)...)
	if code != 130 || !strings.Contains(stderr, "without writing") {
		t.Fatalf("second interrupt: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(twice, "checkpoints", "step-0000003")); err == nil {
		t.Errorf("a second interrupt still wrote the checkpoint of step 3")
	}
}

// InterruptEnvForTest is train.InterruptEnv (the hook that sends SIGINT
// mid-step).
const InterruptEnvForTest = "COMPACT_TEST_SIGINT_STEP"

// TestMemreportTable reproduces `memreport --config configs/tiny.yaml`:
// the same output on every run (column order was map order), units that fit
// (tiny was 0.00 GiB everywhere), the search cap marked, and a note saying
// why a variant needs more than full rank.
func TestMemreportTable(t *testing.T) {
	args := []string{"memreport", "--config", tinyConfig, "--set", "model.num_layers=2", "--variants", "full+none,r0.5+none,r0.25+none,r0.25+block", "--max-batch", "64"}
	code, first, stderr := runAll(t, nil, args...)
	if code != 0 {
		t.Fatalf("memreport: exit %d: %s", code, stderr)
	}
	for i := 0; i < 3; i++ {
		if _, again, _ := runAll(t, nil, args...); again != first {
			t.Fatalf("memreport output changes between runs:\n%s\n---\n%s", first, again)
		}
	}
	for _, want := range []string{"predicted MiB by category", "activations by kind (MiB)", ">=64*", "--max-batch 64", "above full+none by", "compressed z"} {
		if !strings.Contains(first, want) {
			t.Errorf("memreport lacks %q:\n%s", want, first)
		}
	}
	if strings.Contains(first, "GiB by category") {
		t.Errorf("tiny reported in GiB:\n%s", first)
	}
}

func TestMemTableUnits(t *testing.T) {
	for _, c := range []struct {
		n    int64
		unit string
	}{{512, "B"}, {3 << 10, "KiB"}, {45 << 20, "MiB"}, {7 << 30, "GiB"}} {
		if u := unitFor(c.n); u.name != c.unit {
			t.Errorf("unitFor(%d) = %s, want %s", c.n, u.name, c.unit)
		}
	}
}

// TestBenchTable reproduces `bench` on the CPU: aligned columns and "-"
// where no peak FLOP/s is known, never 0.0% MFU.
func TestBenchTable(t *testing.T) {
	code, out, stderr := runAll(t, nil, "bench", "--config", tinyConfig, "--device", "cpu", "--steps", "1", "--warmup", "0",
		"--set", "model.num_layers=1", "--set", "train.micro_batch=2", "--set", "train.seq_len=32")
	if code != 0 {
		t.Fatalf("bench: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("bench: %d lines, want a header and 2 rows:\n%s", len(lines), out)
	}
	for _, l := range lines[1:] {
		if len(strings.TrimRight(l, " ")) != len(strings.TrimRight(lines[0], " ")) {
			t.Errorf("columns not aligned:\n%s", out)
		}
		f := strings.Fields(l)
		if f[len(f)-3] != "-" && !strings.Contains(l, " - ") {
			t.Errorf("MFU on the CPU is not '-': %q", l)
		}
	}
	if strings.Contains(out, "0.0%") {
		t.Errorf("bench prints 0.0%% MFU:\n%s", out)
	}
}

var pngDecodeConfig = png.DecodeConfig
