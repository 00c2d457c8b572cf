package train

// What a run adds to its training steps for the person watching it, as
// llm.c, nanoGPT and the HF Trainer do: a generated sample every
// train.sample_every steps, TensorBoard event files (train.tensorboard)
// and the tokenizer in every checkpoint. The trainer calls afterStep once a
// step is done and hands tokFiles to each checkpoint.

import (
	"fmt"
	"strings"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/tensorboard"
)

type runExtras struct {
	tb       *tensorboard.Writer
	tokFiles []checkpoint.File
}

// newRunExtras prepares the extras of t's run, resumed after step `after`
// (0: a new run). Only rank 0, which owns --out, has any.
func newRunExtras(t *Trainer, after int) (*runExtras, error) {
	x := &runExtras{}
	if t.dp.rank() != 0 {
		return x, nil
	}
	var err error
	if x.tokFiles, err = checkpoint.TokenizerFiles(t.tok, t.cfg); err != nil {
		t.logf("checkpoints will not carry the tokenizer: %v", err)
	}
	if t.cfg.Train.TensorBoard {
		if x.tb, err = tensorboard.Open(t.opts.Out, after); err != nil {
			return nil, err
		}
		t.logf("tensorboard: event files in %s (tensorboard --logdir %s)", t.opts.Out, t.opts.Out)
	}
	return x, nil
}

// afterStep writes a logged step's metrics m (nil when the step did not
// log) to TensorBoard and prints a sample when one is due.
func (x *runExtras) afterStep(t *Trainer, step int, m *Metric) error {
	if x == nil { // a rank other than 0
		return nil
	}
	if x.tb != nil && m != nil {
		vals := map[string]float64{"train/loss": m.Loss, "train/lr": m.LR, "train/grad_norm": m.GradNorm,
			"train/tok_per_s": m.TokPerS, "train/step_ms": m.StepMs, "train/tokens": float64(m.Tokens),
			"train/peak_bytes": float64(m.PeakBytes)}
		if m.MFU != nil {
			vals["train/mfu"] = *m.MFU
		}
		if m.ValLoss != nil {
			vals["val/loss"] = *m.ValLoss
		}
		if m.ValAcc != nil {
			vals["val/accuracy"] = *m.ValAcc
		}
		if err := x.tb.Scalars(step, vals); err != nil {
			return err
		}
	}
	if every := t.cfg.Train.SampleEvery; every > 0 && step%every == 0 {
		return x.sample(t, step)
	}
	return nil
}

// sample generates train.sample_tokens tokens from a document boundary
// (the EOT token, as llm.c does), drawn at temperature 1 with a seed of the
// run's and the step's, and prints them.
func (x *runExtras) sample(t *Trainer, step int) error {
	var ids []uint32 // decoded whole: a byte token alone is not UTF-8
	so := SampleOptions{MaxTokens: t.cfg.Train.SampleTokens, Temperature: 1, TopP: 1, Seed: t.cfg.Train.Seed ^ uint64(step)<<20}
	err := Generate(t.model, t.tok, []int32{int32(t.tok.EOT())}, so, func(id uint32) { ids = append(ids, id) })
	if err != nil {
		return fmt.Errorf("sample at step %d: %w", step, err)
	}
	t.logf("--- sample at step %d (train.sample_every %d) ---\n%s\n---", step, t.cfg.Train.SampleEvery, strings.TrimRight(t.tok.Decode(ids), "\n"))
	return nil
}

func (x *runExtras) close() {
	if x != nil {
		x.tb.Close()
	}
}
