// Files at their edges (issue 22): links in a run directory, corrupt and
// non-regular checkpoint files, and the smaller cases of item 9. Every
// command exits 2 (1 for a failed run) naming the culprit, never blocks,
// and changes no file that existed before.

package main

import (
	"bufio"
	"bytes"
	"context"
	encbin "encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compact-llm/compact/internal/data"
)

// runLimited is run with a working directory and a time limit: a command
// still running after it (blocked on a FIFO, say) fails the test.
func runLimited(t *testing.T, dir string, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("compact %s did not finish within the limit (blocked?): %s", strings.Join(args, " "), stderr.String())
	}
	return exitStatus(t, err), stderr.String()
}

// expectIn is expectRun with a working directory and a time limit.
func expectIn(t *testing.T, dir string, env []string, code int, want []string, args ...string) string {
	t.Helper()
	got, stderr := runLimited(t, dir, env, args...)
	ok := got == code && !strings.Contains(stderr, "panic") && !strings.Contains(stderr, "goroutine")
	for _, w := range want {
		ok = ok && strings.Contains(stderr, w)
	}
	if !ok {
		t.Errorf("compact %s: exit %d, stderr %q; want exit %d naming %q", strings.Join(args, " "), got, stderr, code, want)
	}
	return stderr
}

// copyDir copies the files of src into a new directory dst.
func copyDir(t *testing.T, src, dst string) string {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// Issue 22.1: nothing of a run is written through a link out of --out,
// whichever of its files the link stands for; the file outside is intact.
func TestRunNeverWritesThroughALink(t *testing.T) {
	tr, val := shards(t)
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim.txt")
	victimDir := filepath.Join(dir, "victim")
	os.Mkdir(victimDir, 0o755)
	args := append([]string{"pretrain", "--steps", "2"}, smallRun(tr, val)...)
	for _, name := range []string{".lock", "metrics.jsonl", "metrics.jsonl.tmp", "memreport.json", "memreport.json.tmp", "checkpoints"} {
		os.WriteFile(victim, []byte("DATA\n"), 0o644)
		target := victim
		if name == "checkpoints" {
			target = victimDir
		}
		out := filepath.Join(dir, "run-"+strings.TrimPrefix(name, "."))
		os.Mkdir(out, 0o755)
		if err := os.Symlink(target, filepath.Join(out, name)); err != nil {
			t.Fatal(err)
		}
		expectIn(t, "", nil, 2, []string{filepath.Join(out, name), "symbolic link"}, append(args, "--out", out)...)
		expectIn(t, "", nil, 2, []string{"symbolic link"}, append(args, "--out", out, "--resume")...)
		if raw, _ := os.ReadFile(victim); string(raw) != "DATA\n" {
			t.Errorf("a link named %s: the file outside --out now holds %q", name, raw)
		}
		if entries, _ := os.ReadDir(victimDir); len(entries) > 0 {
			t.Errorf("a link named %s: the directory outside --out got %v", name, entries)
		}
	}
	// A hard link as the lock would be truncated as well.
	out := filepath.Join(dir, "run-hard")
	os.Mkdir(out, 0o755)
	if err := os.Link(victim, filepath.Join(out, ".lock")); err != nil {
		t.Fatal(err)
	}
	expectIn(t, "", nil, 2, []string{"hard link"}, append(args, "--out", out)...)
	if raw, _ := os.ReadFile(victim); string(raw) != "DATA\n" {
		t.Errorf("a hard-linked lock: the file now holds %q", raw)
	}

	// Issue 22.9: a dangling link as --out, and --out . --overwrite.
	dangling := filepath.Join(dir, "dangling")
	os.Symlink(filepath.Join(dir, "nowhere"), dangling)
	expectIn(t, "", nil, 2, []string{"--out " + dangling + " is a symbolic link to " + filepath.Join(dir, "nowhere") + ", which does not exist"},
		append(args, "--out", dangling)...)
	done := filepath.Join(dir, "done")
	expectIn(t, "", nil, 0, nil, append(args, "--out", done)...)
	before := snapshot(t, done)
	expectIn(t, done, nil, 2, []string{"current directory"}, append(args, "--out", ".", "--overwrite")...)
	sameFiles(t, "--out . --overwrite", before, snapshot(t, done))
	if old, _ := filepath.Glob(done + ".old-*"); len(old) > 0 {
		t.Errorf("--out . --overwrite moved the run: %v", old)
	}
}

// shortHeader rewrites a safetensors file so that its header length is one
// byte short of the header (a padding space becomes the first data byte):
// every tensor would load shifted by a byte.
func shortHeader(t *testing.T, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := encbin.LittleEndian.Uint64(raw)
	var b bytes.Buffer
	encbin.Write(&b, encbin.LittleEndian, n)
	b.Write(raw[8 : 8+n])
	b.WriteByte(' ')
	b.Write(raw[8+n:])
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Issue 22.7: a safetensors header one byte short is refused naming the
// file; a checkpoint whose finite weights overflow fails eval and sample
// (exit 1) naming it; a divergence names the step to resume and the change.
func TestCorruptCheckpointsNamed(t *testing.T) {
	out, _ := trainedRun(t)
	dir := t.TempDir()
	bad := copyDir(t, ckpt(out, "4"), filepath.Join(dir, "short"))
	shortHeader(t, filepath.Join(bad, "model.safetensors"))
	before := snapshot(t, dir)
	for _, args := range [][]string{
		{"eval", "--checkpoint", bad, "--device", "cpu"},
		{"eval", "--checkpoint", bad, "--device", "cpu", "--json"},
		{"sample", "--checkpoint", bad, "--device", "cpu", "--prompt", "x", "--max-tokens", "3"},
	} {
		expectIn(t, "", nil, 2, []string{filepath.Join(bad, "model.safetensors"), "header length"}, args...)
	}
	sameFiles(t, "a checkpoint with a short header", before, snapshot(t, dir))

	// Finite weights whose activations overflow: a final norm weight and
	// LM head weights of 3e38 make logits of +-Inf.
	huge := copyDir(t, ckpt(out, "4"), filepath.Join(dir, "huge"))
	rewriteTensor(t, filepath.Join(huge, "model.safetensors"), "model.norm.weight", 3e38)
	setElements(t, filepath.Join(huge, "model.safetensors"), "lm_head.weight", map[int]float32{0: 3e38, 32: -3e38})
	before = snapshot(t, dir)
	for _, args := range [][]string{
		{"eval", "--checkpoint", huge, "--device", "cpu"},
		{"eval", "--checkpoint", huge, "--device", "cpu", "--json"},
		{"sample", "--checkpoint", huge, "--device", "cpu", "--prompt", "x", "--max-tokens", "3"},
	} {
		expectIn(t, "", nil, 1, []string{"checkpoint " + huge}, args...)
	}
	sameFiles(t, "corrupt checkpoints", before, snapshot(t, dir))

	tr, val := shards(t)
	run := filepath.Join(dir, "diverged")
	args := append([]string{"pretrain", "--steps", "6", "--out", run}, smallRun(tr, val)...)
	args = append(args, "--set", "train.lr=1e30", "--set", "train.checkpoint_every=1", "--set", "train.log_every=3", "--set", "train.grad_clip=0")
	expectIn(t, "", nil, 1, []string{"diverged by step", "Resume from step ", filepath.Join(run, "checkpoints", "step-"),
		"the last good checkpoint", "--set train.lr=5e+29 --allow-config-change", "train.grad_clip"}, args...)
}

// Issue 22.8: a FIFO (or a device) where a shard, a checkpoint file, a
// config or a JSONL set belongs is refused at once, not waited on.
func TestNonRegularFilesRefused(t *testing.T) {
	out, base := trainedRun(t)
	_, val := shards(t)
	dir := t.TempDir()
	fifo := func(name string) string {
		p := filepath.Join(dir, name)
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Skip(err)
		}
		return p
	}
	before := snapshot(t, out)
	expectIn(t, "", nil, 2, []string{"fifo.bin", "named pipe"},
		append([]string{"pretrain", "--steps", "1", "--out", filepath.Join(dir, "o1")}, smallRun(fifo("fifo.bin"), val)...)...)
	expectIn(t, "", nil, 2, []string{"fifo.yaml", "named pipe"}, "pretrain", "--config", fifo("fifo.yaml"), "--out", filepath.Join(dir, "o2"))
	for _, name := range []string{"model.safetensors", "config.json"} {
		c := copyDir(t, ckpt(out, "4"), filepath.Join(dir, "ck-"+name))
		os.Remove(filepath.Join(c, name))
		syscall.Mkfifo(filepath.Join(c, name), 0o644)
		expectIn(t, "", nil, 2, []string{filepath.Join(c, name), "named pipe"}, "eval", "--checkpoint", c, "--device", "cpu")
	}
	c := copyDir(t, ckpt(out, "4"), filepath.Join(dir, "ck-dev"))
	os.Remove(filepath.Join(c, "config.json"))
	os.Symlink("/dev/zero", filepath.Join(c, "config.json"))
	expectIn(t, "", nil, 2, []string{"config.json", "device"}, "eval", "--checkpoint", c, "--device", "cpu")

	// On --resume, in the run's own newest checkpoint.
	for _, name := range []string{"trainer_state.json", "optimizer.safetensors"} {
		p := filepath.Join(ckpt(out, "4"), name)
		keep := p + ".keep"
		os.Rename(p, keep)
		syscall.Mkfifo(p, 0o644)
		expectIn(t, "", nil, 2, []string{p, "named pipe"}, append(base, "--out", out, "--resume", "--steps", "6")...)
		os.Remove(p)
		os.Rename(keep, p)
	}
	sameFiles(t, "FIFOs in a checkpoint", before, snapshot(t, out))

	set := fifo("set.jsonl")
	expectIn(t, "", nil, 2, []string{set, "named pipe"}, append(ftArgs(out, filepath.Join(dir, "ft"), "--steps", "1"),
		"--set", "finetune.task=completion", "--set", "data.train="+set, "--set", "finetune.val_fraction=0.5")...)
}

// Issue 22.9, the smaller items.
func TestSmallerEdges(t *testing.T) {
	out, _ := trainedRun(t)
	tr, val := shards(t)
	dir := t.TempDir()

	// A YAML of 100k unknown keys is refused at once, naming the first.
	var b strings.Builder
	b.WriteString("train:\n")
	for i := range 100000 {
		fmt.Fprintf(&b, "  k%d: 1\n", i)
	}
	big := filepath.Join(dir, "big.yaml")
	os.WriteFile(big, []byte(b.String()), 0o644)
	start := time.Now()
	expectIn(t, "", nil, 2, []string{"big.yaml: line 2: unknown key train.k0"}, "pretrain", "--config", big, "--out", filepath.Join(dir, "o"))
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("100k unknown keys took %s", d)
	}

	// A byte order mark in a config, a config.json and a JSONL set.
	bom := filepath.Join(dir, "bom.yaml")
	os.WriteFile(bom, []byte("\ufefftrain:\n  steps: 1\n"), 0o644)
	expectIn(t, "", nil, 0, nil, append([]string{"pretrain", "--config", bom, "--out", filepath.Join(dir, "bom")}, smallRun(tr, val)...)...)
	c := copyDir(t, ckpt(out, "4"), filepath.Join(dir, "bomck"))
	raw, _ := os.ReadFile(filepath.Join(c, "config.json"))
	os.WriteFile(filepath.Join(c, "config.json"), append([]byte("\ufeff"), raw...), 0o644)
	expectIn(t, "", nil, 0, nil, "eval", "--checkpoint", c, "--device", "cpu", "--batches", "1")
	set := filepath.Join(dir, "bom.jsonl")
	os.WriteFile(set, []byte("\ufeff"+`{"prompt":"a","completion":"b"}`+"\n"+`{"prompt":"c","completion":"d"}`+"\n"), 0o644)
	ft := append(ftArgs(out, filepath.Join(dir, "ft"), "--steps", "1"), "--set", "finetune.task=completion", "--set", "data.train="+set, "--set", "finetune.val_fraction=0.5")
	expectIn(t, "", nil, 0, nil, ft...)

	// A JSONL line beyond the reader's limit names the file and line.
	long := filepath.Join(dir, "long.jsonl")
	f, _ := os.Create(long)
	w := bufio.NewWriter(f)
	w.WriteString(`{"prompt":"a","completion":"b"}` + "\n" + `{"prompt":"`)
	w.Write(bytes.Repeat([]byte("x"), 65<<20))
	w.WriteString(`","completion":"b"}` + "\n")
	w.Flush()
	f.Close()
	ft = append(ftArgs(out, filepath.Join(dir, "ft2"), "--steps", "1"), "--set", "finetune.task=completion", "--set", "data.train="+long, "--set", "finetune.val_fraction=0.5")
	expectIn(t, "", nil, 2, []string{long + ":2: the line is longer than 64 MiB"}, ft...)
	os.Remove(long)

	// A classify label out of range names the run's num_labels.
	cls := filepath.Join(dir, "cls.jsonl")
	os.WriteFile(cls, []byte(`{"text":"red","label":0}`+"\n"+`{"text":"blue","label":1e19}`+"\n"), 0o644)
	expectIn(t, "", nil, 2, []string{"cls.jsonl:2: label 1e19 is outside [0, finetune.num_labels=2)"},
		append(ftArgs(out, filepath.Join(dir, "cls"), "--steps", "1"), "--set", "finetune.task=classify",
			"--set", "finetune.num_labels=2", "--set", "data.train="+cls, "--set", "finetune.val_fraction=0.5")...)

	// eval --batches 1000 on a one-window shard reads the window once, and says so.
	one := filepath.Join(dir, "one.bin")
	toks := make([]uint32, 33)
	for i := range toks {
		toks[i] = uint32(i)
	}
	data.WriteShard(one, toks)
	expectIn(t, "", nil, 0, []string{"1 windows of 33 tokens fill 1 batch(es)", "not train.eval_batches (eval --batches) = 1000"},
		"eval", "--checkpoint", ckpt(out, "4"), "--device", "cpu", "--data", one, "--batches", "1000")

	// A full disk during a checkpoint: the partial directory is removed at
	// once, the earlier checkpoint stays, and the path is said once.
	full := filepath.Join(dir, "full")
	stderr := expectIn(t, "", []string{"COMPACT_FAULT_DISK_FULL_CHECKPOINT=4"}, 1, []string{"no space left on device", "the partial checkpoint was removed"},
		append([]string{"pretrain", "--steps", "4", "--out", full}, smallRun(tr, val)...)...)
	if p := filepath.Join(".tmp-step-0000004", "model.safetensors"); strings.Count(stderr, p) != 1 {
		t.Errorf("the failed file is named %d times: %s", strings.Count(stderr, p), stderr)
	}
	if left, _ := filepath.Glob(filepath.Join(full, "checkpoints", ".tmp-*")); len(left) > 0 {
		t.Errorf("a failed checkpoint left %v", left)
	}
	if _, err := os.Stat(ckpt(full, "2")); err != nil {
		t.Errorf("the earlier checkpoint: %v", err)
	}

	// --steps 9223372036854775807: the eta is not "0s".
	eta := filepath.Join(dir, "eta")
	cmd := exec.Command(binary, append([]string{"pretrain", "--steps", fmt.Sprint(math.MaxInt64), "--out", eta}, smallRun(tr, val)...)...)
	pipe, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(pipe)
	line := ""
	for sc.Scan() {
		if line = sc.Text(); strings.HasPrefix(line, "step 1/") {
			break
		}
	}
	cmd.Process.Signal(os.Interrupt)
	for sc.Scan() {
	}
	cmd.Wait()
	if !strings.Contains(line, "eta over 100y") {
		t.Errorf("first step line %q: want eta over 100y", line)
	}
}
