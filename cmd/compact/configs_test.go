package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 21 item 4: `compact configs` lists the built-in configs and copies
// one out to edit (never over a file); bench and memreport without
// --config use the same built-in default as pretrain and say so.
func TestConfigsCommand(t *testing.T) {
	code, out, stderr := runAll(t, nil, "configs")
	if code != 0 {
		t.Fatalf("configs: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"builtin:tiny.yaml", "builtin:llama-1b.yaml", "builtin:finetune-completion.yaml", "configs cp"} {
		if !strings.Contains(out, want) {
			t.Errorf("configs does not list %q:\n%s", want, out)
		}
	}
	dir := t.TempDir()
	if code, stderr := run(t, nil, "configs", "cp", "tiny", dir); code != 0 {
		t.Fatalf("configs cp: exit %d: %s", code, stderr)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "tiny.yaml"))
	want, _ := os.ReadFile("../../configs/tiny.yaml")
	if len(got) == 0 || string(got) != string(want) {
		t.Errorf("configs cp wrote %d bytes, not configs/tiny.yaml", len(got))
	}
	os.WriteFile(filepath.Join(dir, "mine.yaml"), []byte("edited"), 0o644)
	expectUsage(t, nil, "exists", "configs", "cp", "builtin:llama-60m.yaml", filepath.Join(dir, "mine.yaml"))
	if b, _ := os.ReadFile(filepath.Join(dir, "mine.yaml")); string(b) != "edited" {
		t.Error("configs cp overwrote a file")
	}
	expectUsage(t, nil, "llama-2b", "configs", "cp", "llama-2b", dir)
	expectUsage(t, nil, "tiny.yaml", "pretrain", "--config", "builtin:tiny2.yaml", "--out", filepath.Join(dir, "run"))
}

// Issue 21 items 4 and 6: bench without --config is tiny's (a CPU bench
// ran over 10 minutes on the 77M library default, its name empty); the
// device column says cpu with auto's reason printed once; MFU is null in
// JSON where unknown (it was 0); --profile on the CPU is refused, not
// ignored.
func TestBenchDefaultConfigAndCPU(t *testing.T) {
	js := filepath.Join(t.TempDir(), "b.json")
	small := []string{"--steps", "1", "--warmup", "0", "--set", "model.num_layers=1", "--set", "train.micro_batch=2", "--set", "train.seq_len=32"}
	code, out, stderr := runAll(t, nil, append([]string{"bench", "--json", js}, small...)...)
	if code != 0 {
		t.Fatalf("bench: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "no --config: using the built-in configs/tiny.yaml") || !strings.Contains(out, "tiny full") || !strings.Contains(out, "tiny compact r=0.25") {
		t.Errorf("bench without --config:\n%s\n%s", stderr, out)
	}
	if strings.Contains(out, "no usable CUDA") || strings.Count(stderr, "no usable CUDA") > 1 {
		t.Errorf("the device's reason is in the table, or repeated:\n%s\n%s", out, stderr)
	}
	var rs []map[string]any
	raw, _ := os.ReadFile(js)
	if err := json.Unmarshal(raw, &rs); err != nil || len(rs) != 2 {
		t.Fatalf("bench JSON: %v\n%s", err, raw)
	}
	if _, err := os.Stat("/dev/nvidia0"); err != nil {
		for _, r := range rs {
			if v, ok := r["mfu"]; !ok || v != nil {
				t.Errorf("mfu on the CPU is %v, want null", v)
			}
			if r["device"] != "cpu" {
				t.Errorf("device %v, want cpu", r["device"])
			}
		}
	}
	expectUsage(t, nil, "--profile", append([]string{"bench", "--device", "cpu", "--profile"}, small...)...)
	code, _, stderr = runAll(t, nil, "memreport", "--variants", "full+none")
	if code != 0 || !strings.Contains(stderr, "no --config: using the built-in configs/tiny.yaml") {
		t.Errorf("memreport without --config: exit %d: %s", code, stderr)
	}
}
