package train

// train.on_instability=rollback, as large runs recover from a loss spike
// (PaLM restarted about 100 steps before a spike and skipped 200-500
// batches): go back to the newest checkpoint from before the trouble began,
// skip the batches that led up to it, lower the learning rate by
// train.health.lr_factor, and go on. With no checkpoint that old the run
// restarts from its initialisation (train.seed), at the lowered rate.
//
// Everything a rollback decides is a function of the run's own numbers, so
// a resumed run takes the same rollbacks as an uninterrupted one: the
// guard's state (lr scale, rollback count, events) rides in every
// checkpoint, the checkpoints of the abandoned stretch are moved aside to
// checkpoints/rolled-back-N/ (never deleted; --resume does not see them),
// and the metrics lines of each stretch carry its rollback count so that a
// resume keeps the abandoned stretch's lines (OpenMetrics).

import (
	"fmt"
	"strconv"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
)

// lrScale is the learning-rate multiplier that rollbacks have set (1
// before any).
func (t *Trainer) lrScale() float64 {
	if t.state.Health == nil {
		return 1
	}
	return t.state.Health.LRScale
}

// onInstability acts on an instability as train.on_instability says:
// stop the run (exit 1), or roll it back (rollback.go).
func (t *Trainer) onInstability(e checkpoint.HealthEvent) (checkpoint.HealthEvent, error) {
	if t.cfg.Train.OnInstability == config.InstabilityRollback {
		return t.rollback(e)
	}
	last, err := checkpoint.Before(t.ckptRoot(), e.Since)
	if err != nil {
		return checkpoint.HealthEvent{}, err
	}
	return checkpoint.HealthEvent{}, &InstabilityError{Event: e, Last: last}
}

// rollback returns the run to the newest checkpoint before e.Since, or to
// its initialisation. The loader stays where it is: the batches since
// that point are skipped. It returns the event that records the rollback.
func (t *Trainer) rollback(e checkpoint.HealthEvent) (checkpoint.HealthEvent, error) {
	h, hc := t.state.Health, t.cfg.Train.Health
	target, err := checkpoint.Before(t.ckptRoot(), e.Since)
	if err != nil {
		return checkpoint.HealthEvent{}, err
	}
	if h.Rollbacks >= hc.MaxRollbacks {
		return checkpoint.HealthEvent{}, &InstabilityError{Event: e, Last: target,
			Why: fmt.Sprintf("%d rollbacks taken already (train.health.max_rollbacks)", h.Rollbacks)}
	}
	// What survives the rollback: the history, the rate, the count.
	from, events, rollbacks, scale := t.state.Step, h.Events, h.Rollbacks+1, h.LRScale*hc.LRFactor
	if target == "" {
		if err := t.restartFromInit(); err != nil {
			return checkpoint.HealthEvent{}, fmt.Errorf("rollback at step %d: %w", from, err)
		}
	} else if err := t.restoreCheckpoint(target); err != nil {
		return checkpoint.HealthEvent{}, fmt.Errorf("rollback at step %d to %s: %w", from, target, err)
	}
	// The guard resumes judging from its state at the target (or afresh),
	// with the history and the new rate.
	back := t.state.Health
	if back == nil || target == "" {
		back = newHealthState()
	}
	back.LRScale, back.Rollbacks, back.Events = scale, rollbacks, events
	where := "its initialisation (no checkpoint from before step " + strconv.Itoa(e.Since) + ")"
	if target != "" {
		where = target
	}
	ev := checkpoint.HealthEvent{Step: from, Kind: EventRollback, Value: scale, Ref: h.LRScale, Since: t.state.Step,
		Message: fmt.Sprintf("rollback %d of at most %d: from step %d back to %s at step %d; the batches of steps %d..%d are skipped; learning rate x%g (peak now %g)",
			rollbacks, hc.MaxRollbacks, from, where, t.state.Step, t.state.Step+1, from, hc.LRFactor, t.sched.LR*scale)}
	back.Events = append(back.Events, ev)
	t.state.Health = back
	t.health = newHealthGuard(t.cfg, back)
	if t.dp.rank() == 0 {
		if err := checkpoint.SetAside(t.ckptRoot(), t.state.Step, rollbacks); err != nil {
			return checkpoint.HealthEvent{}, fmt.Errorf("rollback: %w", err)
		}
	}
	if t.bar != nil { // the steps since the target are taken again
		t.bar.ChangeMax(t.bar.GetMax() + from - t.state.Step)
	}
	t.lastCkpt = target
	return ev, nil
}

// restoreCheckpoint loads the weights, moments and trainer state of dir,
// keeping the loader where it is.
func (t *Trainer) restoreCheckpoint(dir string) error {
	st, err := checkpoint.ReadState(dir)
	if err != nil {
		return err
	}
	if err := checkpoint.Load(dir, t.model, t.opt); err != nil {
		return err
	}
	t.opt.Step, t.opt.AdamStart, t.state.AdamStart = st.Step, st.AdamStart, st.AdamStart
	t.state.Step, t.state.Tokens, t.state.LR, t.state.Epoch = st.Step, st.Tokens, st.LR, st.Epoch
	t.state.Health = st.Health
	return nil
}

// restartFromInit refills the weights from train.seed and zeroes the
// optimizer state: the run begins again, on later batches.
func (t *Trainer) restartFromInit() error {
	if err := t.model.Init(t.cfg.Train.Seed); err != nil {
		return err
	}
	t.opt.Reset()
	t.opt.AdamStart, t.state.AdamStart = 0, 0
	t.state.Step, t.state.Tokens, t.state.LR, t.state.Epoch = 0, 0, 0, 0
	t.state.Health = nil
	return nil
}
