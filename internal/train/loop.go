package train

// The training loop.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/model"
	"github.com/schollz/progressbar/v3"
)

// run trains from the state's step to train.steps: a step, on log steps
// its metrics and health (logstep.go), the run's extras, a checkpoint every
// train.checkpoint_every steps; it stops between steps when ctx is done.
func (t *Trainer) run(ctx context.Context) error {
	if t.complete {
		t.logf("%s", t.completeLine(t.lastCkpt))
		return nil
	}
	tr := t.cfg.Train
	if err := t.writeMemreport(false); err != nil {
		return err
	}
	start := t.state.Step
	t.logf("model: %d parameters, %d layers, hidden %d; compact %v; steps %d..%d, %d tokens per step",
		t.cfg.Model.NumParams(), t.cfg.Model.Layers, t.cfg.Model.Hidden, t.cfg.Compact.Enabled,
		start+1, tr.Steps, tr.MicroBatch*tr.SeqLen*tr.GradAccum*t.dp.world())
	if t.opts.Progress && t.opts.Log != nil {
		t.barDesc = "training"
		t.bar = progressbar.NewOptions(tr.Steps-start, progressbar.OptionSetWriter(t.opts.Log),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetDescription(t.barDesc), progressbar.OptionClearOnFinish())
		defer func() {
			if t.bar != nil { // an error left the bar drawn: clear its line
				t.bar.Exit()
				t.bar = nil
			}
		}()
	}
	if t.dp == nil { // ranks stop only where they agree to: between steps
		t.model.Stop = func() bool { return ctx.Err() != nil }
		defer func() { t.model.Stop = nil }()
	}
	sum := runSummary{began: time.Now(), startStep: start, startTokens: t.state.Tokens}
	clock := logClock{at: sum.began, tokens: t.state.Tokens, step: start}
	var lastMetric Metric
	for t.state.Step < tr.Steps {
		before, err := t.train.SaveState() // where an abandoned step leaves the loader
		if err != nil {
			return err
		}
		stop, err := t.dp.agreeStop(ctx.Err() != nil)
		if err != nil {
			return err
		}
		if stop {
			return t.interrupted(before)
		}
		step := t.state.Step + 1
		last := step == tr.Steps
		evalNow := last || (tr.EvalEvery > 0 && step%tr.EvalEvery == 0)
		logNow := step%tr.LogEvery == 0 || evalNow || step == 1
		loss, gn, err := t.step(logNow)
		if errors.Is(err, model.ErrInterrupted) {
			return t.interrupted(before)
		}
		if err != nil {
			return err
		}
		if logNow {
			m, err := t.measure(step, loss, gn, evalNow, &clock, sum.began)
			if err != nil {
				return err
			}
			acted, actErr := t.judge(&m, last)
			if err := t.report(m, &sum, clock.at); err != nil {
				return err
			}
			lastMetric = m
			if acted {
				if actErr != nil {
					return actErr
				}
				if t.bar != nil {
					t.bar.Add(1)
				}
				continue // rolled back: no checkpoint of the abandoned state
			}
		}
		var logged *Metric
		if logNow {
			logged = &lastMetric
		}
		if err := t.extras.afterStep(t, step, logged); err != nil {
			return err
		}
		if t.bar != nil {
			t.bar.Add(1)
		}
		if last || (tr.CheckpointEvery > 0 && step%tr.CheckpointEvery == 0) {
			if err := t.checkpoint(); err != nil {
				return err
			}
		}
	}
	if t.bar != nil {
		t.bar.Finish()
		t.bar = nil
	}
	if err := t.writeMemreport(true); err != nil {
		return err
	}
	if h := healthSummary(t.state.Health); h != "" {
		t.logf("%s", h)
	}
	t.logf("%s", sum.report(t.state, t.be.Memory().Snapshot().PeakAll, t.lastCkpt))
	return nil
}

// interrupted abandons the step in flight, writes the checkpoint of the
// last complete step (loader at before) unless it exists, and says how to
// resume.
func (t *Trainer) interrupted(before json.RawMessage) error {
	if t.bar != nil {
		t.bar.Exit()
		t.bar = nil
	}
	if t.state.Step == 0 {
		t.logf("interrupted during step 1: nothing to save")
		return fmt.Errorf("%w before the first step completed", ErrInterrupted)
	}
	if t.lastCkpt == "" || t.lastCkpt != checkpoint.StepDir(t.ckptRoot(), t.state.Step) {
		t.logf("interrupted: writing the checkpoint of step %d, the last complete one", t.state.Step)
		if err := t.checkpointAt(before); err != nil {
			return err
		}
	}
	hint := ""
	if t.opts.ResumeCommand != "" {
		hint = "; resume with: " + t.opts.ResumeCommand
	}
	return fmt.Errorf("%w at step %d, checkpoint %s%s", ErrInterrupted, t.state.Step, t.lastCkpt, hint)
}
