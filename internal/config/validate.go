package config

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/gpu/device"
	"github.com/compact-llm/compact/internal/model"
)

// oneOf refuses a value of key that is not among names, listing them.
func oneOf(key, value string, names []string) error {
	if !slices.Contains(names, value) {
		return fmt.Errorf("%s = %q: want one of %s", key, value, strings.Join(names, ", "))
	}
	return nil
}

// Validate checks every impossible value and names its key.
func (c Config) Validate() error {
	if err := c.Model.Validate(); err != nil {
		return err
	}
	if err := validateNumbers(c); err != nil {
		return err
	}
	t := c.Train
	if err := oneOf("train.device", t.Device, device.Names); err != nil {
		return err
	}
	positive := []struct {
		key string
		val int
	}{{"train.seq_len", t.SeqLen}, {"train.micro_batch", t.MicroBatch}, {"train.grad_accum", t.GradAccum},
		{"train.steps", t.Steps}, {"train.log_every", t.LogEvery}, {"train.eval_batches", t.EvalBatches},
		{"train.keep_checkpoints", t.KeepCheckpoints}}
	for _, p := range positive {
		if p.val <= 0 {
			return fmt.Errorf("%s = %d: must be positive", p.key, p.val)
		}
	}
	nonNeg := []struct {
		key string
		val int
	}{{"train.threads", t.Threads}, {"train.warmup_steps", t.WarmupSteps}, {"train.loss_chunk", t.LossChunk},
		{"train.eval_every", t.EvalEvery}, {"train.checkpoint_every", t.CheckpointEvery}, {"train.sample_every", t.SampleEvery}}
	for _, p := range nonNeg {
		if p.val < 0 {
			return fmt.Errorf("%s = %d: must not be negative", p.key, p.val)
		}
	}
	if t.SeqLen > c.Model.MaxSeqLen {
		return fmt.Errorf("train.seq_len = %d exceeds model.max_seq_len = %d", t.SeqLen, c.Model.MaxSeqLen)
	}
	if t.SampleEvery > 0 && (t.SampleTokens < 1 || t.SampleTokens > 1<<20) {
		return fmt.Errorf("train.sample_tokens = %d: want 1 to %d with train.sample_every set", t.SampleTokens, 1<<20)
	}
	if t.LR <= 0 {
		return fmt.Errorf("train.lr = %g: must be positive", t.LR)
	}
	if t.MinLRRatio < 0 || t.MinLRRatio > 1 {
		return fmt.Errorf("train.min_lr_ratio = %g: must be in [0, 1]", t.MinLRRatio)
	}
	if t.WarmupRatio < 0 || t.WarmupRatio >= 1 {
		return fmt.Errorf("train.warmup_ratio = %g: must be in [0, 1)", t.WarmupRatio)
	}
	if t.Beta1 < 0 || t.Beta1 >= 1 {
		return fmt.Errorf("train.beta1 = %g: must be in [0, 1)", t.Beta1)
	}
	if t.Beta2 < 0 || t.Beta2 >= 1 {
		return fmt.Errorf("train.beta2 = %g: must be in [0, 1)", t.Beta2)
	}
	if t.AdamEps < 0 {
		return fmt.Errorf("train.adam_eps = %g: must be positive (or 0 for the optimizer's default)", t.AdamEps)
	}
	if err := oneOf("train.optimizer", t.Optimizer, Optimizers); err != nil {
		return err
	}
	if t.WeightDecay < 0 {
		return fmt.Errorf("train.weight_decay = %g: must not be negative", t.WeightDecay)
	}
	if err := oneOf("train.weights", t.Weights, WeightModes); err != nil {
		return err
	}
	if err := oneOf("train.optimizer_state", t.OptimizerState, OptimizerStates); err != nil {
		return err
	}
	if err := oneOf("train.grad_accum_state", t.GradAccumState, GradAccumStates); err != nil {
		return err
	}
	if err := oneOf("train.cuda_graph", t.CUDAGraph, CUDAGraphModes); err != nil {
		return err
	}
	if err := checkHealth(t); err != nil {
		return err
	}
	if t.FusedUpdate && t.GradClip != 0 {
		return fmt.Errorf("train.grad_clip = %g: train.fused_update updates each layer before the global gradient norm is known, so it needs train.grad_clip = 0", t.GradClip)
	}
	if t.CommTimeout < 0 {
		return fmt.Errorf("train.comm_timeout = %d: must be seconds >= 0 (0: never end a job for a silent rank)", t.CommTimeout)
	}
	if t.Zero != ZeroOff && t.Zero != ZeroState {
		return fmt.Errorf("train.zero = %d: must be %d (every rank keeps the whole optimizer state) or %d (ZeRO-1: each rank keeps its share)", t.Zero, ZeroOff, ZeroState)
	}
	if _, err := model.ParseRecompute(t.Recompute); err != nil {
		return fmt.Errorf("train.recompute: %w", err)
	}
	if err := c.Compact.Check(c.Model); err != nil {
		return err
	}
	if err := c.checkApplies(); err != nil {
		return err
	}
	d, ft := c.Data, c.Finetune
	if !slices.Contains(data.TokenizerNames, d.Tokenizer) {
		// A HuggingFace tokenizer.json, or a directory holding one.
		path := d.Tokenizer
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			path = filepath.Join(path, "tokenizer.json")
		}
		if !strings.HasSuffix(path, ".json") {
			return fmt.Errorf("data.tokenizer = %q: want %s, a HuggingFace tokenizer.json or a directory holding one", d.Tokenizer, strings.Join(data.TokenizerNames, ", "))
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("data.tokenizer: %w", err)
		}
	}
	if err := oneOf("finetune.task", ft.Task, Tasks); err != nil {
		return err
	}
	if ft.Task == TaskClassify && ft.NumLabels < 2 {
		return fmt.Errorf("finetune.num_labels = %d: classify needs at least 2", ft.NumLabels)
	}
	if ft.Task == TaskClassify && c.Train.SampleEvery > 0 {
		return fmt.Errorf("train.sample_every = %d: a classifier has no LM head to generate with (finetune.task = classify)", c.Train.SampleEvery)
	}
	if ft.Task != TaskClassify && ft.NumLabels != 0 {
		return fmt.Errorf("finetune.num_labels = %d is only for finetune.task=classify", ft.NumLabels)
	}
	if err := checkLabels(ft); err != nil {
		return err
	}
	if ft.ValFraction < 0 || ft.ValFraction >= 1 {
		return fmt.Errorf("finetune.val_fraction = %g: must be in [0, 1)", ft.ValFraction)
	}
	if ft.Task != TaskCausal {
		if len(d.Train) == 0 {
			return fmt.Errorf("finetune.task = %s needs data.train: JSONL files", ft.Task)
		}
		if len(d.Val) > 0 && ft.ValFraction > 0 {
			return fmt.Errorf("finetune.val_fraction = %g and data.val are both set: choose one", ft.ValFraction)
		}
	} else if ft.ValFraction > 0 {
		return fmt.Errorf("finetune.val_fraction is for the JSONL tasks; causal fine-tuning takes data.val shards")
	}
	if err := oneOf("data.special_tokens", d.SpecialTokens, data.SpecialTokenModes); err != nil {
		return err
	}
	if err := oneOf("data.format", d.Format, data.Formats); err != nil {
		return err
	}
	if len(d.Train) == 0 && len(d.Val) > 0 {
		return fmt.Errorf("data.val is set but data.train is empty")
	}
	if len(d.Train) > 0 && len(d.Val) == 0 && ft.ValFraction == 0 {
		return fmt.Errorf("data.train is set but data.val is empty: name validation shards")
	}
	for _, key := range []string{"data.train", "data.val"} {
		globs := d.Train
		if key == "data.val" {
			globs = d.Val
		}
		for _, g := range globs {
			m, err := filepath.Glob(g)
			if err != nil {
				return fmt.Errorf("%s: bad pattern %q: %w", key, g, err)
			}
			if len(m) == 0 {
				return fmt.Errorf("%s: no file matches %q", key, g)
			}
		}
	}
	if len(d.Train) == 0 && d.CorpusBytes <= 0 {
		return fmt.Errorf("data.corpus_bytes = %d: must be positive for the default corpus", d.CorpusBytes)
	}
	// A tokenizer.json's size is checked once it is loaded.
	tokVocab := map[string]int{data.TokenizerGPT2: 50257, data.TokenizerByte: 257}[d.Tokenizer]
	if c.Model.VocabSize < tokVocab {
		return fmt.Errorf("model.vocab_size = %d is smaller than the %s tokenizer's %d tokens", c.Model.VocabSize, d.Tokenizer, tokVocab)
	}
	return nil
}

// maxActivationElems caps micro_batch x seq_len x the widest activation row
// so that no size computation of the engine can overflow.
const maxActivationElems = 1 << 44

// CheckActivationSize caps micro_batch x seq_len x the widest activation
// row (see maxActivationElems).
func CheckActivationSize(cfg Config) error {
	B, T, m := cfg.Train.MicroBatch, cfg.Train.SeqLen, cfg.Model
	widest := math.Max(float64(m.VocabSize), math.Max(float64(m.Intermediate), float64(m.Hidden)))
	if float64(B)*float64(T)*widest > maxActivationElems {
		return fmt.Errorf("train.micro_batch = %d with train.seq_len = %d and a widest row of %.0f: activations would exceed %d elements",
			B, T, widest, int64(maxActivationElems))
	}
	return nil
}
