package train

// What a log step adds to the loop: the step's metrics (rates since the
// last log step, the validation loss at eval steps), the health guard's
// judgement and what train.on_instability does about it, and the line in
// metrics.jsonl and the log.

import (
	"fmt"
	"time"

	"github.com/compact-llm/compact/internal/config"
	"github.com/schollz/progressbar/v3"
)

// logf prints a log line; with a progress bar, above it (the bar is
// cleared, the line printed, the bar redrawn below).
func (t *Trainer) logf(format string, a ...any) {
	if t.opts.Log == nil {
		return
	}
	if t.bar != nil {
		progressbar.Bprintln(t.bar, fmt.Sprintf(format, a...))
		t.bar.Describe(t.barDesc) // redraws: flushes the line, then the bar
		return
	}
	fmt.Fprintf(t.opts.Log, format+"\n", a...)
}

// logClock is where a log step's rates are measured from: the previous
// log step (or the start of this invocation).
type logClock struct {
	at     time.Time
	tokens int64
	step   int
}

// measure checks log step step's training loss and gradient norm, and
// makes its metrics: the rates since the clock (which it then moves to
// now) and, at an eval step, the validation loss and accuracy.
func (t *Trainer) measure(step int, loss, gn float64, evalNow bool, clock *logClock, began time.Time) (Metric, error) {
	err := checkFinite(step, "the training loss", loss)
	if err == nil {
		err = checkFinite(step, "the gradient norm", gn)
	}
	if err != nil {
		return Metric{}, err
	}
	now := time.Now()
	m := Metric{Step: step, Loss: loss, LR: t.state.LR, Tokens: t.state.Tokens,
		TokPerS:   float64(t.state.Tokens-clock.tokens) / now.Sub(clock.at).Seconds(),
		PeakBytes: t.be.Memory().Snapshot().PeakAll, GradNorm: gn, ElapsedS: now.Sub(began).Seconds(),
		StepMs: now.Sub(clock.at).Seconds() * 1e3 / float64(step-clock.step)}
	m.MFU = MFU(t.cfg, t.deviceDesc, m.TokPerS/float64(t.dp.world()))
	*clock = logClock{at: now, tokens: t.state.Tokens, step: step}
	if evalNow {
		vl, acc, err := t.evaluate()
		if err != nil {
			return Metric{}, err
		}
		if err := checkFinite(step, "the validation loss", vl); err != nil {
			return Metric{}, err
		}
		m.ValLoss = &vl
		if acc >= 0 {
			m.ValAcc = &acc
		}
	}
	if t.dp != nil {
		m.Comm = &t.dp.bytes
	}
	return m, nil
}

// judge shows the health guard m's numbers (last: the run's last step) and
// records what it saw in m; acted reports that train.on_instability acted
// on an instability, and err is what ends the run when it stopped it (nil
// when it rolled back, the rollback recorded in m).
func (t *Trainer) judge(m *Metric, last bool) (acted bool, err error) {
	m.Health = t.health.observe(m.Step, m.Loss, m.GradNorm)
	if m.ValLoss != nil {
		m.Health = append(m.Health, t.health.observeVal(m.Step, *m.ValLoss)...)
	}
	unstable, isUnstable := instability(m.Health)
	if last && !isUnstable {
		m.Health = append(m.Health, t.health.atEnd(m.Step)...)
	}
	m.Rollbacks = t.state.Health.Rollbacks // the stretch this line belongs to
	if !isUnstable || t.cfg.Train.OnInstability == config.InstabilityWarn {
		return false, nil
	}
	rb, err := t.onInstability(unstable)
	if err != nil {
		return true, err
	}
	m.Health = append(m.Health, rb)
	return true, nil
}

// report writes m to metrics.jsonl and prints its line (now: when it was
// measured) and what the health guard saw.
func (t *Trainer) report(m Metric, sum *runSummary, now time.Time) error {
	if t.metrics != nil {
		if err := t.metrics.Write(m); err != nil {
			return err
		}
	}
	sum.observe(m)
	steps := t.cfg.Train.Steps
	line := fmt.Sprintf("step %d/%d loss %.4f lr %.3g grad_norm %.3f tok/s %.0f ms/step %.1f", m.Step, steps, m.Loss, m.LR, m.GradNorm, m.TokPerS, m.StepMs)
	if m.MFU != nil {
		line += fmt.Sprintf(" mfu %.1f%%", *m.MFU*100)
	}
	if m.ValLoss != nil {
		line += fmt.Sprintf(" val_loss %.4f", *m.ValLoss)
	}
	if m.ValAcc != nil {
		line += fmt.Sprintf(" val_accuracy %.4f", *m.ValAcc)
	}
	if t.bar != nil {
		// The bar shows its own time and ETA; its loss says which step it is from.
		t.barDesc = fmt.Sprintf("loss %.3f @%d  %.0f tok/s", m.Loss, m.Step, m.TokPerS)
	} else {
		line += fmt.Sprintf(" elapsed %s eta %s", shortDuration(now.Sub(sum.began)), shortDuration(sum.eta(now, m.Step, steps)))
	}
	t.logf("%s", line)
	for _, e := range m.Health {
		t.logf("health: %s", e.Message)
	}
	return nil
}
