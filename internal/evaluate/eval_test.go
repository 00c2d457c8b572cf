package evaluate

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/train"
)

// tinyConfig is a two-layer model on the default corpus with the byte
// tokenizer, small enough to train in a second on the CPU.
func tinyConfig(t *testing.T, dir string, compact bool) config.Config {
	t.Helper()
	t.Setenv("COMPACT_CACHE", filepath.Join(dir, "cache"))
	tok, err := data.NewTokenizer("byte")
	if err != nil {
		t.Fatal(err)
	}
	trainGlob, valGlob, err := data.DefaultCorpus(tok, 128<<10)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Model.VocabSize, cfg.Model.Hidden, cfg.Model.Intermediate = 257, 32, 64
	cfg.Model.Layers, cfg.Model.Heads, cfg.Model.KVHeads, cfg.Model.MaxSeqLen = 2, 4, 2, 32
	cfg.Train.SeqLen, cfg.Train.MicroBatch, cfg.Train.Steps = 32, 4, 6
	cfg.Train.LR = 3e-3
	cfg.Train.LogEvery, cfg.Train.EvalEvery, cfg.Train.EvalBatches = 1, 6, 3
	cfg.Train.CheckpointEvery, cfg.Train.KeepCheckpoints = 6, 1
	cfg.Train.Device, cfg.Train.Threads = "cpu", 2
	cfg.Compact.Enabled, cfg.Compact.UpdateGap = compact, 3
	cfg.Data.Tokenizer = "byte"
	cfg.Data.Train, cfg.Data.Val = []string{trainGlob}, []string{valGlob}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// trained runs cfg into a fresh directory and returns the run's last
// metric line (with its validation loss) and the checkpoint it wrote.
func trained(t *testing.T, cfg config.Config) (train.Metric, config.Base) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "run")
	if err := train.Pretrain(context.Background(), cfg, train.RunOptions{Out: out}); err != nil {
		t.Fatal(err)
	}
	ms, err := train.ReadMetrics(filepath.Join(out, "metrics.jsonl"))
	if err != nil || len(ms) == 0 {
		t.Fatalf("metrics: %v (%d lines)", err, len(ms))
	}
	last := ms[len(ms)-1]
	if last.ValLoss == nil {
		t.Fatalf("the last step has no validation loss: %+v", last)
	}
	b, err := checkpoint.ResolveBase(out)
	if err != nil {
		t.Fatal(err)
	}
	return last, b
}

// eval's loss on a checkpoint is the trainer's validation loss at the step
// it saved, to the bit: the same weights, batches and pass (train.Validate),
// for CompAct (master-free bf16 weights) and full rank (an fp32 master);
// the perplexity is its exponential.
func TestEvalEqualsTrainerValidation(t *testing.T) {
	for _, compact := range []bool{true, false} {
		dir := t.TempDir()
		cfg := tinyConfig(t, dir, compact)
		last, b := trained(t, cfg)
		var log bytes.Buffer
		r, err := Checkpoint(b, cfg, Options{}, &log)
		if err != nil {
			t.Fatal(err)
		}
		if r.Loss == nil || *r.Loss != *last.ValLoss {
			t.Errorf("compact %v: eval loss %v, the trainer's val_loss at step %d %v", compact, r.Loss, last.Step, *last.ValLoss)
		}
		if r.Perplexity == nil || *r.Perplexity != math.Exp(*r.Loss) || r.Accuracy != nil {
			t.Errorf("compact %v: perplexity %v, accuracy %v for loss %v", compact, r.Perplexity, r.Accuracy, *r.Loss)
		}
		if r.Task != config.TaskCausal || r.Device != "cpu" || r.Checkpoint != b.Dir || !strings.Contains(log.String(), "device: cpu") {
			t.Errorf("result %+v, log %q", r, log.String())
		}
		// Fewer batches: another loss, still finite.
		cfg.Train.EvalBatches = 1
		r1, err := Checkpoint(b, cfg, Options{}, nil)
		if err != nil || r1.Loss == nil || math.IsNaN(*r1.Loss) || *r1.Loss == *r.Loss {
			t.Errorf("compact %v: one batch: %v %v", compact, r1.Loss, err)
		}
	}
}

// Bad requests are usage errors naming the culprit, before any work.
func TestEvalRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	cfg := tinyConfig(t, dir, true)
	_, b := trained(t, cfg)
	if _, err := Checkpoint(b, cfg, Options{Predictions: filepath.Join(dir, "p.jsonl")}, nil); !config.IsUsage(err) || !strings.Contains(err.Error(), "not a classifier") {
		t.Errorf("--predictions on a causal model: %v", err)
	}
	bad := cfg
	bad.Train.SeqLen = 0
	if _, err := Checkpoint(b, bad, Options{}, nil); !config.IsUsage(err) || !strings.Contains(err.Error(), "train.seq_len") {
		t.Errorf("an invalid config: %v", err)
	}
	empty := b
	empty.Dir = t.TempDir()
	if _, err := Checkpoint(empty, cfg, Options{}, nil); !config.IsUsage(err) {
		t.Errorf("a directory without weights: %v", err)
	}
	for _, so := range []SampleOptions{{MaxTokens: 0, TopP: 1}, {MaxTokens: 1, Temperature: -1, TopP: 1}, {MaxTokens: 1, TopK: -1, TopP: 1}, {MaxTokens: 1, TopP: 0}} {
		if err := Sample(b, cfg, so, &bytes.Buffer{}, nil); !config.IsUsage(err) {
			t.Errorf("sample %+v: %v", so, err)
		}
	}
	long := SampleOptions{Prompt: strings.Repeat("x", 40), MaxTokens: 1, TopP: 1}
	if err := Sample(b, cfg, long, &bytes.Buffer{}, nil); !config.IsUsage(err) || !strings.Contains(err.Error(), "at most 32 positions") {
		t.Errorf("a prompt longer than the model: %v", err)
	}
}

// Generation: the prompt first, then at most MaxTokens tokens (one byte
// each with the byte tokenizer); the same seed gives the same text, greedy
// decoding ignores the seed, and the sequence never passes the model's
// positions.
func TestSample(t *testing.T) {
	dir := t.TempDir()
	cfg := tinyConfig(t, dir, true)
	_, b := trained(t, cfg)
	gen := func(so SampleOptions) string {
		t.Helper()
		var out bytes.Buffer
		if err := Sample(b, cfg, so, &out, nil); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	so := SampleOptions{Prompt: "func ", MaxTokens: 12, Temperature: 1, TopP: 1, Seed: 1}
	a := gen(so)
	if !strings.HasPrefix(a, "func ") || !strings.HasSuffix(a, "\n") || len(a) > len("func ")+12+1 {
		t.Errorf("sample %q: want the prompt, at most 12 bytes and a newline", a)
	}
	if again := gen(so); again != a {
		t.Errorf("the same seed gave %q then %q", a, again)
	}
	greedy := so
	greedy.Temperature = 0
	g1 := gen(greedy)
	greedy.Seed = 99
	if g2 := gen(greedy); g2 != g1 {
		t.Errorf("greedy decoding depends on the seed: %q vs %q", g1, g2)
	}
	so.MaxTokens = 1000 // capped by max_position_embeddings (32)
	if s := gen(so); len(s) > 32+1 {
		t.Errorf("generated past the model's 32 positions: %d bytes", len(s))
	}
	if _, err := os.Stat(b.Dir); err != nil {
		t.Fatal(err)
	}
}
