package main

import (
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tableRows are the rows of memreport's first table: the lines after its
// header up to the first line that is not a row.
func tableRows(out string) []string {
	lines := strings.Split(out, "\n")
	var rows []string
	for i := 2; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "*") || strings.HasPrefix(l, "compressed z") || strings.HasPrefix(l, "(") {
			break
		}
		rows = append(rows, l)
	}
	return rows
}

// Issue 21 item 3: memreport on llama-1b prints the config as written and
// the few variants that matter, at most 12 rows, and says how to see all.
func TestMemreportDefaultRows(t *testing.T) {
	code, out, stderr := runAll(t, nil, "memreport", "--config", "../../configs/llama-1b.yaml")
	if code != 0 {
		t.Fatalf("memreport: exit %d: %s", code, stderr)
	}
	rows := tableRows(out)
	if len(rows) == 0 || len(rows) > 12 {
		t.Fatalf("%d rows, want 1 to 12:\n%s", len(rows), out)
	}
	for _, role := range []string{"the config as written", "full rank", "CompAct", "lean CompAct", "best that fits"} {
		if !strings.Contains(out, role) {
			t.Errorf("no row for %q:\n%s", role, out)
		}
	}
	if !strings.Contains(rows[0], "the config as written") || !strings.Contains(out, "--all") {
		t.Errorf("the first row is not the config, or --all is not mentioned:\n%s", out)
	}
	code, all, _ := runAll(t, nil, "memreport", "--config", "../../configs/llama-1b.yaml", "--all")
	if n := len(tableRows(all)); code != 0 || n < 100 {
		t.Errorf("--all: exit %d, %d rows", code, n)
	}
	expectUsage(t, nil, "--all", "memreport", "--config", "../../configs/tiny.yaml", "--all", "--variants", "full+none")
}

// Issue 21 item 3: on the CPU the limit is this host's memory (it was 80
// GiB on a 23.5 GiB host), --measure predicts for the device it measures on
// (it predicted CUDA's layout and measured the CPU's, "error +6.81%"), and
// the activation columns keep their order whatever --variants says.
func TestMemreportDeviceInUse(t *testing.T) {
	small := []string{"memreport", "--set", "model.vocab_size=512", "--set", "model.hidden_size=64",
		"--set", "model.intermediate_size=128", "--set", "model.num_layers=2", "--set", "model.num_heads=2",
		"--set", "model.num_kv_heads=2", "--set", "train.seq_len=64", "--set", "model.max_seq_len=64",
		"--set", "data.tokenizer=byte", "--batch", "2"}
	out, err := exec.Command(binary, append(append([]string{}, small...), "--device", "cpu", "--json", "--variants", "full+none")...).Output()
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Title  string
		Memory int64 `json:"memory_bytes"`
	}
	json.Unmarshal(out, &rep)
	if rep.Memory <= 0 || rep.Memory > 64<<40 || !strings.Contains(rep.Title, "of this host") {
		t.Errorf("--device cpu: limit %d bytes, title %q; want this host's memory", rep.Memory, rep.Title)
	}
	// Auto on a machine without a GPU measures the CPU: the prediction is
	// the CPU's too, and equal to the measurement.
	if _, err := os.Stat("/dev/nvidia0"); err != nil {
		out, err = exec.Command(binary, append(append([]string{}, small...), "--measure", "--json", "--variants", "r0.25+none")...).Output()
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Rows []struct {
				ErrorPercent float64 `json:"error_percent"`
			}
		}
		if json.Unmarshal(out, &m) != nil || len(m.Rows) != 1 || m.Rows[0].ErrorPercent != 0 {
			t.Errorf("--measure on the device in use: %s", out)
		}
	}
	header := func(variants string) []string {
		t.Helper()
		_, out, _ := runAll(t, nil, append(append([]string{}, small...), "--device", "cpu", "--variants", variants)...)
		i := strings.Index(out, "activations by kind")
		if i < 0 {
			t.Fatalf("no activations table:\n%s", out)
		}
		return strings.Fields(strings.SplitN(out[i:], "\n", 3)[1])
	}
	a, b := header("full+none,r0.25+block"), header("r0.25+block,full+none,r0.5+none")
	if strings.Join(a, " ") != strings.Join(b, " ") {
		t.Errorf("activation columns change with --variants:\n%v\n%v", a, b)
	}
}

// Issue 21 item 3: --plot draws a chart a person can read: one bar per
// default row, names on the left, at a size that fits a screen (it was
// 5520 x 480 with a clipped title); the extension picks the format.
func TestMemreportPlot(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mem.png")
	if code, stderr := run(t, nil, "memreport", "--config", "../../configs/llama-1b.yaml", "--plot", p); code != 0 {
		t.Fatalf("memreport --plot: exit %d: %s", code, stderr)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if cfg.Width > 1600 || cfg.Height > 1200 || cfg.Height < 200 {
		t.Errorf("chart is %dx%d", cfg.Width, cfg.Height)
	}
	expectUsage(t, nil, "--plot", "memreport", "--config", "../../configs/tiny.yaml", "--plot", filepath.Join(t.TempDir(), "mem.gif"))
}

// Issue 22 item 5: a huge --batch is predicted (the report says nothing
// fits) without allocating B x T on the host: it died with "fatal error:
// runtime: out of memory". Run under a 4 GB address-space limit.
func TestMemreportHugeBatch(t *testing.T) {
	cmd := exec.Command("sh", "-c", `ulimit -v 4000000 && exec "$0" memreport --config ../../configs/tiny.yaml --device cpu --batch 100000000`, binary)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "fatal error") || !strings.Contains(string(out), "nothing fits") {
		t.Fatalf("memreport --batch 100000000: %v\n%s", err, out)
	}
	expectUsage(t, nil, "--batch", "memreport", "--config", "../../configs/tiny.yaml", "--batch", "10000000000")
}
