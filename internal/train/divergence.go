package train

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/compact-llm/compact/internal/config"
)

// DivergedError stops a run whose loss, gradient norm or weights stopped
// being finite. It is a runtime failure (exit 1), not bad input.
//
// Where it is caught: the loss and gradient norm are read from the device
// only on log steps (reading them every step would cost a GPU sync per
// step), so they are checked there and at every evaluation; in between, a
// divergence is caught when a checkpoint is written: checkpoint.SaveTensors
// checks every weight and moment on the host before it creates any file
// (its NonFiniteError becomes a DivergedError, Trainer.checkpointAt). A NaN never heals (it
// spreads to every weight through the next update), so no checkpoint of a
// diverged state is ever written and the good ones are neither replaced nor
// pruned.
type DivergedError struct {
	Step int
	What string
	// Advice says where to go on from: the last good checkpoint and what
	// to change (the trainer fills it in: adviseDivergence).
	Advice string
}

func (e *DivergedError) Error() string {
	advice := e.Advice
	if advice == "" {
		advice = "Lower train.lr, set train.grad_clip (e.g. 1.0) or lengthen the warmup (train.warmup_ratio), then start again " +
			"or resume the last good checkpoint with --resume --allow-config-change"
	}
	return fmt.Sprintf("training diverged by step %d: %s; no checkpoint of this state was written and the earlier ones are kept. %s",
		e.Step, e.What, advice)
}

// checkFinite returns a DivergedError when v, the value called name at
// step, is NaN or infinite.
func checkFinite(step int, name string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return &DivergedError{Step: step, What: fmt.Sprintf("%s is %g", name, v)}
	}
	return nil
}

// adviseDivergence gives a DivergedError ending the run its advice: which
// checkpoint to resume and what to change there. Resuming the last good
// checkpoint unchanged only diverges again (training is deterministic), so
// the advice is a concrete change: half the peak learning rate, and the
// other knobs the run has not turned yet.
func (t *Trainer) adviseDivergence(err error) error {
	var d *DivergedError
	if !errors.As(err, &d) {
		return err
	}
	// The error itself, not a wrapper: a wrapper's text was fixed before
	// the advice existed (and the DivergedError names the step already).
	d.Advice = divergenceAdvice(t.cfg, t.lastCkpt, t.opts.ResumeCommand)
	return d
}

func divergenceAdvice(cfg config.Config, last, resumeCmd string) string {
	key, lr := cfg.PeakLRKey(), cfg.PeakLR()
	set := fmt.Sprintf("--set %s=%.3g", key, lr/2)
	var other []string
	if cfg.Train.GradClip <= 0 && !cfg.Train.FusedUpdate {
		other = append(other, "set train.grad_clip (e.g. 1.0)")
	}
	other = append(other, fmt.Sprintf("lengthen the warmup (now %d steps: train.warmup_ratio or train.warmup_steps)", cfg.Warmup()))
	if last == "" {
		return fmt.Sprintf("No checkpoint was written before it: start again with a lower %s (e.g. %s, half of %.3g), or %s.",
			key, set, lr, strings.Join(other, ", or "))
	}
	step := strings.TrimLeft(strings.TrimPrefix(filepath.Base(last), "step-"), "0")
	if _, err := strconv.Atoi(step); err != nil {
		step = "?"
	}
	if resumeCmd == "" {
		resumeCmd = "compact ... --resume"
	}
	return fmt.Sprintf("Resume from step %s (%s, the last good checkpoint) with a change, since unchanged it diverges again (training is deterministic): "+
		"a lower %s (half of %.3g): %s %s --allow-config-change; or %s.",
		step, last, key, lr, resumeCmd, set, strings.Join(other, ", or "))
}
