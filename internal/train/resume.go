package train

// Resuming a run: the state adopted from the checkpoint resumed from (its
// files and configuration checked by internal/checkpoint), the weights,
// moments and data position loaded, and what the resume of a finished run
// says instead of training.

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
)

// adoptResumeState reads the trainer state of the checkpoint resumed from
// and refuses one the config cannot continue.
func (t *Trainer) adoptResumeState(resumeFrom string) error {
	cfg, opts := t.cfg, t.opts
	st, err := checkpoint.ReadState(resumeFrom)
	if err != nil {
		return &config.UsageError{Err: fmt.Errorf("resume: %w", err)}
	}
	sameGlobalBatch(&st, cfg, opts.Dist)
	if err := sameOptimizer(st, cfg); err != nil {
		return config.Usagef("resume from %s: %w", resumeFrom, err)
	}
	if err := checkpoint.CheckState(resumeFrom, st, cfg); err != nil {
		return err
	}
	if err := checkpoint.CheckResumeConfig(filepath.Join(resumeFrom, checkpoint.StateFile), st.Config, cfg, opts.AllowConfigChange, t.logf); err != nil {
		return err
	}
	t.complete = st.Step == cfg.Train.Steps
	if c, ok := checkpoint.CompareSchedules(st.Step, st.Config, cfg); ok && !t.complete {
		t.logf("%s", c)
		st.Schedule = append(st.Schedule, c)
	}
	t.state = st
	// The checkpoint resumed from is the newest complete one: an interrupt
	// before the next step completes must not rewrite it from memory
	// (weights rounded to the new settings, a window with no step-N).
	t.lastCkpt = resumeFrom
	return nil
}

// initWeights fills the model and optimizer: from the checkpoint resumed
// from, else from the seed and then the base's weights (fine-tuning), else
// from the seed alone.
func (t *Trainer) initWeights(resumeFrom string) error {
	cfg := t.cfg
	switch {
	case resumeFrom != "":
		opt := t.opt
		if t.opts.WeightsOnly {
			opt = nil // the moments stay zero and Adam's bias correction restarts
			t.state.AdamStart = t.state.Step
			t.logf("resume --weights-only: fresh Adam moments from step %d (zero, their bias correction restarting)", t.state.Step)
		}
		if err := checkpoint.Load(resumeFrom, t.model, opt); err != nil {
			return &config.UsageError{Err: fmt.Errorf("resume: %w", err)}
		}
		t.opt.Step, t.opt.AdamStart = t.state.Step, t.state.AdamStart
		if err := t.train.RestoreState(t.state.Loader); err != nil {
			return config.Usagef("resume from %s: %w", resumeFrom, err)
		}
		t.logf("resumed from %s at step %d", resumeFrom, t.state.Step)
	case t.opts.Base != "":
		if err := t.model.Init(cfg.Train.Seed); err != nil { // heads the base lacks keep this
			return err
		}
		if err := checkpoint.LoadBase(t.model, t.opts.Base, t.logf); err != nil {
			return &config.UsageError{Err: fmt.Errorf("--base: %w", err)}
		}
		t.state = checkpoint.TrainerState{Config: cfg, Base: t.opts.Base}
	default:
		if err := t.model.Init(cfg.Train.Seed); err != nil {
			return err
		}
		t.state = checkpoint.TrainerState{Config: cfg}
	}
	return nil
}

// sameOptimizer refuses to resume moments written by one Adam form into
// the other: they would silently continue under a different update rule.
func sameOptimizer(saved checkpoint.TrainerState, now config.Config) error {
	if was, is := saved.Optimizer, now.OptimizerName(); was != is {
		return fmt.Errorf("the checkpoint was trained with optimizer %s, the config resolves train.optimizer = %s to %s; set train.optimizer=%s to continue it",
			was, now.Train.Optimizer, is, was)
	}
	return nil
}

// completeLine is what a resume of a finished run says instead of training:
// its final numbers, from metrics.jsonl where it has them.
func (t *Trainer) completeLine(ckpt string) string {
	st := t.state
	var b strings.Builder
	fmt.Fprintf(&b, "already complete: step %d of train.steps %d, %d tokens", st.Step, t.cfg.Train.Steps, st.Tokens)
	if ms, err := ReadMetrics(filepath.Join(t.opts.Out, "metrics.jsonl")); err == nil {
		var loss, val *float64
		for _, m := range ms {
			if m.Step <= st.Step {
				loss = &m.Loss
				if m.ValLoss != nil {
					val = m.ValLoss
				}
			}
		}
		if loss != nil {
			fmt.Fprintf(&b, "; final loss %.4f", *loss)
		}
		if val != nil {
			fmt.Fprintf(&b, ", val_loss %.4f", *val)
		}
	}
	fmt.Fprintf(&b, "; checkpoint %s. Nothing to do: raise --steps to train further (the schedule then stretches to the new total), or --overwrite to start again", ckpt)
	return b.String()
}
