// Adversarial input from issue 9: every command exits 2 (1 for a diverged
// run) naming the key or file, never panics, and changes no file that
// existed before.

package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/model"
)

// snapshot hashes every file under dir (nil when dir does not exist).
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == ".lock" { // the lock records its holder's pid
			return err
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(raw)
		out[p] = hex.EncodeToString(sum[:])
		return nil
	})
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameFiles fails unless every file of before is unchanged (new files, such
// as the lock, are allowed).
func sameFiles(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for p, h := range before {
		if after[p] != h {
			t.Errorf("%s: %s was changed or removed", what, p)
		}
	}
}

// expectUsage runs the CLI and checks exit 2, the named culprit and no panic.
func expectUsage(t *testing.T, env []string, want string, args ...string) {
	t.Helper()
	code, stderr := run(t, env, args...)
	if code != 2 || !strings.Contains(stderr, want) || strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine") {
		t.Errorf("compact %s: exit %d, stderr %q; want exit 2 naming %q", strings.Join(args, " "), code, stderr, want)
	}
}

// trainedRun makes a small run of 4 steps with checkpoints at 2 and 4.
func trainedRun(t *testing.T) (out string, base []string) {
	t.Helper()
	tr, val := shards(t)
	out = filepath.Join(t.TempDir(), "run")
	base = append([]string{"pretrain", "--steps", "4"}, smallRun(tr, val)...)
	if code, stderr := run(t, nil, append(base, "--out", out)...); code != 0 {
		t.Fatalf("training: exit %d: %s", code, stderr)
	}
	return out, base
}

// Item 1 and 3: absurd sizes and non-finite or ill-typed numbers from
// --set, COMPACT_* and YAML are refused before anything is written.
func TestBadSizesAndNumbers(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	yaml := func(body string) string {
		p := filepath.Join(dir, strings.NewReplacer(":", "", " ", "", "\n", "").Replace(body)+".yaml")
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	p := []string{"pretrain", "--config", "../../configs/tiny.yaml", "--device", "cpu", "--out", out}
	for _, c := range []struct {
		set, want string
	}{
		{"model.vocab_size=1099511627776", "model.vocab_size"},
		{"model.vocab_size=1073741824", "model.vocab_size"},
		{"model.vocab_size=16000000", "model.vocab_size"}, // fits the caps, not the host
		{"train.lr=NaN", "train.lr"},
		{"train.lr=Inf", "train.lr"},
		{"compact.alpha=NaN", "compact.alpha"},
		{"train.beta1=NaN", "train.beta1"},
		{"train.beta2=NaN", "train.beta2"},
		{"train.adam_eps=NaN", "train.adam_eps"},
		{"compact.eps=Inf", "compact.eps"},
		{"train.min_lr_ratio=NaN", "train.min_lr_ratio"},
		{"train.weight_decay=NaN", "train.weight_decay"},
		{"model.rope_theta=NaN", "model.rope_theta"},
		{"model.rms_eps=Inf", "model.rms_eps"},
		{"model.init_std=NaN", "model.init_std"},
		{"compact.o_proj_scale=NaN", "compact.o_proj_scale"},
		{"train.grad_clip=NaN", "train.grad_clip"},
		{"train.grad_clip=-1", "train.grad_clip"},
		{"train.warmup_ratio=NaN", "train.warmup_ratio"},
		{"finetune.val_fraction=NaN", "finetune.val_fraction"},
		{"train.steps=1.5", "train.steps"},
		{"train.seed=-1", "train.seed"},
		{"model.max_seq_len=1e11", "model.max_seq_len"},
	} {
		expectUsage(t, nil, c.want, append(p, "--set", c.set)...)
	}
	expectUsage(t, []string{"COMPACT_TRAIN_LR=NaN"}, "COMPACT_TRAIN_LR", p...)
	for key, body := range map[string]string{
		"train.lr":         "train:\n  lr: .nan\n",
		"compact.alpha":    "compact:\n  alpha: .inf\n",
		"train.steps":      "train:\n  steps: 1.5\n",
		"train.seed":       "train:\n  seed: -1\n",
		"model.vocab_size": "model:\n  vocab_size: 1099511627776\n",
	} {
		expectUsage(t, nil, key, "pretrain", "--config", yaml(body), "--device", "cpu", "--out", out)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused run left %s behind", out)
	}
}

// Item 3: flags that parse but make no sense.
func TestBadFlagValues(t *testing.T) {
	out, _ := trainedRun(t)
	before := snapshot(t, out)
	tok := filepath.Join(t.TempDir(), "tok")
	for _, c := range [][]string{
		{"--temperature", "sample", "--checkpoint", out, "--temperature", "NaN"},
		{"--top-p", "sample", "--checkpoint", out, "--top-p", "NaN"},
		{"--batches", "eval", "--checkpoint", out, "--batches", "-1"},
		{"--batch", "memreport", "--config", "../../configs/tiny.yaml", "--batch", "-3"},
		{"--reserve", "memreport", "--config", "../../configs/tiny.yaml", "--reserve", "NaN"},
		{"--shard-tokens", "tokenize", "--out", tok, "--shard-tokens", "-1", "main.go"},
	} {
		expectUsage(t, nil, c[0], c[1:]...)
	}
	sameFiles(t, "bad flags", before, snapshot(t, out))

	// Item 1 through a base's config.json: absurd, then merely too large
	// for this host, sizes are refused before any allocation.
	base := filepath.Join(t.TempDir(), "base")
	os.Mkdir(base, 0o755)
	ckpt := filepath.Join(out, "checkpoints", "step-0000004")
	raw, _ := os.ReadFile(filepath.Join(ckpt, "model.safetensors"))
	os.WriteFile(filepath.Join(base, "model.safetensors"), raw, 0o644)
	raw, _ = os.ReadFile(filepath.Join(ckpt, "config.json"))
	var hf map[string]any
	if err := json.Unmarshal(raw, &hf); err != nil {
		t.Fatal(err)
	}
	for _, sizes := range []map[string]any{{"vocab_size": 1073741824}, {"vocab_size": 16000000, "hidden_size": 8192}} {
		for k, v := range sizes {
			hf[k] = v
		}
		raw, _ = json.Marshal(hf)
		os.WriteFile(filepath.Join(base, "config.json"), raw, 0o644)
		expectUsage(t, nil, "model.vocab_size", "eval", "--checkpoint", base, "--device", "cpu")
		expectUsage(t, nil, "model.vocab_size", "finetune", "--base", base, "--device", "cpu", "--out", filepath.Join(base, "ft"))
	}
}

// Item 8: a prefix cannot write outside --out.
func TestTokenizePrefixStaysInOut(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "a", "b")
	expectUsage(t, nil, "prefix \"../../evil\"", "tokenize", "--out", out, "--tokenizer", "byte", "--prefix", "../../evil", "main.go")
	expectUsage(t, nil, "prefix", "tokenize", "--out", out, "--tokenizer", "byte", "--prefix", "x/y", "main.go")
	if m, _ := filepath.Glob(filepath.Join(root, "evil*")); len(m) > 0 {
		t.Fatalf("tokenize wrote outside --out: %v", m)
	}
}

// editState rewrites one field of trainer_state.json in ckpt.
func editState(t *testing.T, ckpt, field string, value any) {
	t.Helper()
	p := filepath.Join(ckpt, "trainer_state.json")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	st[field] = value
	raw, _ = json.Marshal(st)
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Item 2: a corrupt trainer_state.json is refused on --resume, naming the
// file and field, and metrics.jsonl keeps every line.
func TestCorruptTrainerStateOnResume(t *testing.T) {
	out, base := trainedRun(t)
	ckpt := filepath.Join(out, "checkpoints", "step-0000004")
	for _, v := range []int{-5, 100000} {
		editState(t, ckpt, "step", v)
		before := snapshot(t, out)
		code, stderr := run(t, nil, append(base, "--out", out, "--resume", "--steps", "6")...)
		if code != 2 || !strings.Contains(stderr, "trainer_state.json") || !strings.Contains(stderr, "step =") {
			t.Errorf("step %d: exit %d: %s", v, code, stderr)
		}
		sameFiles(t, "resume with a corrupt state", before, snapshot(t, out))
	}
	if n := len(readMetrics(t, out)); n != 4 {
		t.Fatalf("metrics.jsonl has %d lines, want the 4 of the run", n)
	}
}

// Item 4: a diverging run stops with exit 1 naming the step and what to
// change, writes no checkpoint of the diverged state and keeps the good one.
func TestDivergenceKeepsGoodCheckpoints(t *testing.T) {
	tr, val := shards(t)
	out := filepath.Join(t.TempDir(), "run")
	args := append([]string{"pretrain", "--steps", "6", "--out", out}, smallRun(tr, val)...)
	args = append(args, "--set", "train.lr=1e30", "--set", "train.checkpoint_every=1", "--set", "train.log_every=3", "--set", "train.grad_clip=0")
	code, stderr := run(t, nil, args...)
	if code != 1 || !strings.Contains(stderr, "diverged by step") || !strings.Contains(stderr, "train.lr") || strings.Contains(stderr, "panic") {
		t.Fatalf("exit %d: %s; want exit 1 naming the step and train.lr", code, stderr)
	}
	cks, _ := filepath.Glob(filepath.Join(out, "checkpoints", "step-*"))
	if len(cks) == 0 {
		t.Fatalf("the good checkpoints were pruned")
	}
	// Every checkpoint left is finite: eval refuses NaN weights (exit 2).
	// Their activations may still overflow after a step at lr 1e30: then
	// eval fails its non-finite loss (exit 1), which proves the same.
	for _, c := range cks {
		code, stderr := run(t, nil, "eval", "--checkpoint", c, "--device", "cpu", "--batches", "1")
		if code != 0 && (code != 1 || !strings.Contains(stderr, "the validation loss is")) {
			t.Errorf("checkpoint %s left by a diverged run: eval exit %d: %s", c, code, stderr)
		}
	}
}

// Item 5: a run directory belongs to one run.
func TestRunDirectoryBelongsToOneRun(t *testing.T) {
	out, base := trainedRun(t)
	before := snapshot(t, out)
	expectUsage(t, nil, "--resume", append(base, "--out", out)...)
	sameFiles(t, "second run without --resume", before, snapshot(t, out))

	// A live lock (held here, as a running process would) is refused.
	f, err := os.OpenFile(filepath.Join(out, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	expectUsage(t, nil, "in use", append(base, "--out", out, "--resume", "--steps", "6")...)
	expectUsage(t, nil, "in use", append(base, "--out", out, "--overwrite")...)
	f.Close() // a dead holder's lock is released by the kernel
	sameFiles(t, "locked run", before, snapshot(t, out))

	// --out naming a file.
	expectUsage(t, nil, "is a file", append(base, "--out", filepath.Join(out, "metrics.jsonl"))...)

	// --overwrite moves the old run aside, never deletes it.
	if code, stderr := run(t, nil, append(base, "--out", out, "--overwrite", "--steps", "2")...); code != 0 {
		t.Fatalf("--overwrite: exit %d: %s", code, stderr)
	}
	old, _ := filepath.Glob(out + ".old-*")
	if len(old) != 1 {
		t.Fatalf("--overwrite left %v, want one %s.old-* directory", old, out)
	}
	moved := map[string]string{}
	for p, h := range before {
		moved[strings.Replace(p, out, old[0], 1)] = h
	}
	sameFiles(t, "moved-aside run", moved, snapshot(t, old[0]))
	if n := len(readMetrics(t, out)); n != 2 {
		t.Fatalf("the new run has %d metric lines, want 2", n)
	}
}

// rewriteTensor replaces the file's tensors, setting element 0 of name to v.
func rewriteTensor(t *testing.T, path, name string, v float32) {
	t.Helper()
	setElements(t, path, name, map[int]float32{0: v})
}

// setElements replaces the file's tensors, setting the given elements of
// name.
func setElements(t *testing.T, path, name string, at map[int]float32) {
	t.Helper()
	s, err := model.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	var ts []model.NamedTensor
	for n, ti := range s.Tensors {
		d, err := s.Float32(n)
		if err != nil {
			t.Fatal(err)
		}
		if n == name {
			for i, v := range at {
				d[i] = v
			}
		}
		ts = append(ts, model.NamedTensor{Name: n, Shape: ti.Shape, Data: d})
	}
	s.Close()
	var b bytes.Buffer
	if err := model.WriteSafetensors(&b, ts); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Item 7: NaN weights or moments in a checkpoint are refused at load.
func TestNonFiniteCheckpointRefused(t *testing.T) {
	out, base := trainedRun(t)
	ckpt := filepath.Join(out, "checkpoints", "step-0000004")
	const w = "model.layers.0.mlp.up_proj.weight"
	rewriteTensor(t, filepath.Join(ckpt, "optimizer.safetensors"), w+".exp_avg", float32(math.NaN()))
	before := snapshot(t, out)
	expectUsage(t, nil, w+".exp_avg", append(base, "--out", out, "--resume", "--steps", "6")...)
	sameFiles(t, "non-finite moments", before, snapshot(t, out))
	rewriteTensor(t, filepath.Join(ckpt, "model.safetensors"), w, float32(math.Inf(1)))
	before = snapshot(t, out)
	expectUsage(t, nil, w, "eval", "--checkpoint", ckpt, "--device", "cpu", "--json")
	expectUsage(t, nil, "model.safetensors", append(base, "--out", out, "--resume", "--steps", "6")...)
	sameFiles(t, "non-finite checkpoint", before, snapshot(t, out))
}

// Item 9: token ids beyond the vocabulary anywhere in a train or val shard,
// and shards of another tokenizer, are refused before any output exists;
// resuming with other data settings or optimizer settings is explicit.
func TestShardTokensAndResumeChanges(t *testing.T) {
	tr, val := shards(t)
	dir := t.TempDir()
	good, _ := filepath.Glob(tr)
	toks := make([]uint32, 5000)
	for i := range toks {
		toks[i] = uint32(i % 250)
	}
	toks[len(toks)-1] = 300 // one bad token, at the very end
	bad := filepath.Join(dir, "bad.bin")
	if err := data.WriteShard(bad, toks); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	expectUsage(t, nil, "bad.bin", append([]string{"pretrain", "--steps", "1", "--out", out}, smallRun(bad, val)...)...)
	expectUsage(t, nil, "bad.bin", append([]string{"pretrain", "--steps", "1", "--out", out}, smallRun(good[0], bad)...)...)
	if _, err := os.Stat(out); err == nil {
		t.Fatalf("a refused run left %s behind", out)
	}
	// byte shards (tagged by tokenize) under the gpt2 tokenizer.
	gpt2 := append(smallRun(tr, val), "--set", "data.tokenizer=gpt2", "--set", "model.vocab_size=50304")
	expectUsage(t, nil, "tokenizer byte", append([]string{"pretrain", "--steps", "1", "--out", out}, gpt2...)...)

	run1, base := trainedRun(t)
	before := snapshot(t, run1)
	for _, set := range []string{"train.seq_len=16", "train.seed=7", "data.val=" + good[0]} {
		expectUsage(t, nil, strings.Split(set, "=")[0], append(base, "--out", run1, "--resume", "--steps", "6", "--set", set)...)
	}
	for _, set := range []string{"train.lr=0.01", "train.micro_batch=2", "compact.update_gap=5"} {
		expectUsage(t, nil, "--allow-config-change", append(base, "--out", run1, "--resume", "--steps", "6", "--set", set)...)
	}
	sameFiles(t, "refused resume", before, snapshot(t, run1))
	code, stderr := run(t, nil, append(base, "--out", run1, "--resume", "--steps", "6", "--set", "train.lr=0.01", "--allow-config-change")...)
	if code != 0 || !strings.Contains(stderr, "train.lr") {
		t.Fatalf("resume with --allow-config-change: exit %d: %s", code, stderr)
	}
}

// Item 6: classify labels beyond int64 are refused, naming file and line.
func TestClassifyHugeLabels(t *testing.T) {
	pre, _ := trainedRun(t)
	dir := t.TempDir()
	for _, label := range []string{"1e19", "1e300", "9223372036854775808"} {
		p := filepath.Join(dir, "cls.jsonl")
		body := `{"text":"red","label":0}` + "\n" + `{"text":"blue","label":` + label + "}\n"
		os.WriteFile(p, []byte(body), 0o644)
		out := filepath.Join(dir, "out")
		expectUsage(t, nil, "cls.jsonl:2: label "+label, append(ftArgs(pre, out, "--steps", "1"), "--set", "finetune.task=classify",
			"--set", "finetune.num_labels=2", "--set", "data.train="+p, "--set", "finetune.val_fraction=0.5")...)
		if _, err := os.Stat(out); err == nil {
			t.Errorf("label %s: a refused run left %s behind", label, out)
		}
	}
}
