package train

// The training-health guard: a run watches its own loss, gradient norm and
// validation loss and says when they go wrong, long before anything turns
// NaN. A slow divergence (the loss climbs back up and stays there, the
// gradient norm grows several-fold) ends with a finite, useless model and,
// without this guard, exit 0.
//
// It reads only what the loop already reads: the training loss and the
// gradient norm of log steps (every train.log_every steps; reading them
// every step would cost a GPU sync per step) and the validation loss of eval
// steps. Three detectors:
//
//   - spike: a logged loss far above the loss's level (the mean of the last
//     train.health.window steps' logged losses), by more than
//     train.health.spike of the level and more than spikeDeviations
//     standard deviations of those losses (the batch-to-batch noise);
//   - sustained rise: the level more than train.health.rise above its
//     lowest value, for train.health.patience steps; likewise the
//     gradient norm's level more than train.health.grad_rise times its
//     lowest value after the warmup;
//   - validation: a validation loss more than train.health.rise above the
//     best one so far.
//
// Each event is printed (step, what rose, by how much, what to try),
// recorded on its step's line of metrics.jsonl and counted in the end-of-run
// summary. train.on_instability chooses what else happens: warn (nothing),
// stop (exit 1, the checkpoints kept) or rollback (rollback.go). A single
// spike sample is noise until the next log step confirms it, so only a
// confirmed spike, a rise or a validation rise is an instability.
//
// Windows, not exponential averages: an average that remembers the steep
// fall of the first few hundred steps lags so far behind that a loss which
// bottoms out and climbs back never rises above it. The state (the
// windows, the lows, the events) is saved in every checkpoint, so a
// resumed run judges exactly as the uninterrupted one would.

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
)

// spikeDeviations: a spike is also this many standard deviations of the
// window's samples above their level, so a noisy corpus does not cry wolf.
const spikeDeviations = 6

// minSamples: the fewest samples a window holds before it is judged.
const minSamples = 5

// Kinds of health events.
const (
	EventSpike     = "loss_spike"
	EventRise      = "loss_rise"
	EventGradRise  = "grad_norm_rise"
	EventValRise   = "val_loss_rise"
	EventEndRising = "rising_at_end"
	EventRollback  = "rollback"
)

// newHealthState is the state of a run that has not logged yet.
func newHealthState() *checkpoint.HealthState { return &checkpoint.HealthState{LRScale: 1} }

// healthGuard judges a run's numbers against its configuration.
type healthGuard struct {
	cfg    config.HealthConfig
	policy string
	k      int // samples in a window: train.health.window / train.log_every
	every  int // train.log_every
	warmup int
	lrKey  string  // the key to lower, as the run resolves it
	lr     float64 // its value
	s      *checkpoint.HealthState
}

func newHealthGuard(c config.Config, s *checkpoint.HealthState) *healthGuard {
	k := max(minSamples, c.Train.Health.Window/c.Train.LogEvery)
	return &healthGuard{cfg: c.Train.Health, policy: c.Train.OnInstability, k: k, every: c.Train.LogEvery,
		warmup: c.Warmup(), lrKey: c.PeakLRKey(), lr: c.PeakLR(), s: s}
}

// center is the step a window of n samples ending at step stands for.
func (g *healthGuard) center(step, n int) int {
	return max(1, step-(n-1)*g.every/2)
}

// off reports whether the guard is disabled.
func (g *healthGuard) off() bool { return g.policy == config.InstabilityOff }

// level is the mean of a window of samples and the standard error of that
// mean, from the samples' spread (a trend inside the window counts as
// spread, which only makes the guard more careful).
func level(xs []float64) (mean, stderr float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	sd := math.Sqrt(ss / float64(max(1, len(xs)-1)))
	return mean, sd / math.Sqrt(float64(len(xs)))
}

// push appends x to a window of at most k samples.
func push(w []float64, x float64, k int) []float64 {
	w = append(w, x)
	if len(w) > k {
		w = append(w[:0], w[len(w)-k:]...)
	}
	return w
}

// observe takes the training loss and gradient norm of log step step and
// returns what it saw.
func (g *healthGuard) observe(step int, loss, gradNorm float64) []checkpoint.HealthEvent {
	if g.off() {
		return nil
	}
	s := g.s
	s.Samples++
	defer func() { s.LastStep = step }()
	var out []checkpoint.HealthEvent
	e, spiked := g.spike(step, loss)
	if spiked {
		out = append(out, e)
	}
	if !spiked || s.SpikeSeen { // an unconfirmed spike stays out of the level
		s.Losses = push(s.Losses, loss, g.k)
	}
	if e, ok := g.lossRise(step); ok {
		out = append(out, e)
	}
	if e, ok := g.gradRise(step, gradNorm); ok {
		out = append(out, e)
	}
	return g.record(out)
}

// spike judges one sample against the window before the sample joins it:
// more than train.health.spike above the level and more than
// spikeDeviations standard deviations of the samples. The second spike
// sample in a row confirms the first; the rest of the run of spikes is
// silent.
func (g *healthGuard) spike(step int, loss float64) (checkpoint.HealthEvent, bool) {
	s := g.s
	if len(s.Losses) < minSamples {
		return checkpoint.HealthEvent{}, false
	}
	lvl, se := level(s.Losses)
	sd := se * math.Sqrt(float64(len(s.Losses)))
	if loss-lvl <= math.Max(g.cfg.Spike*lvl, spikeDeviations*sd) {
		s.SpikeStep, s.SpikeSeen = 0, false
		return checkpoint.HealthEvent{}, false
	}
	// The loss of step s is that of the weights after step s-1: the
	// damage was done after the last normal sample.
	e := checkpoint.HealthEvent{Step: step, Kind: EventSpike, Value: loss, Ref: lvl, Since: s.LastStep,
		Message: fmt.Sprintf("loss spike at step %d: %.4f, %.0f%% above its level %.4f", step, loss, 100*(loss/lvl-1), lvl)}
	switch {
	case s.SpikeStep == 0:
		s.SpikeStep, s.SpikeFrom = step, s.LastStep
	case !s.SpikeSeen:
		s.SpikeSeen = true
		e.Since, e.Instability = s.SpikeFrom, true
		e.Message = fmt.Sprintf("the loss spike of step %d persists at step %d: %.4f, %.0f%% above its level %.4f",
			s.SpikeStep, step, loss, 100*(loss/lvl-1), lvl)
	default:
		return checkpoint.HealthEvent{}, true // reported already
	}
	return e, true
}

// rise follows level lvl (of a window of n samples ending at step) in r:
// a new lowest restarts it; a level that exceeds its lowest, as exceeds
// judges, starts or continues a rise, which is reported once it has lasted
// train.health.patience steps. It returns the state the reported rise was
// measured from; after a report the lowest restarts from the current
// level, so a rise that goes on is reported again at each further step of
// the same size.
func (g *healthGuard) rise(r *checkpoint.Rise, step, n int, lvl float64, exceeds func(low float64) bool) (checkpoint.Rise, bool) {
	if r.LowStep == 0 || lvl < r.Low {
		*r = checkpoint.Rise{Low: lvl, LowStep: g.center(step, n)}
		return checkpoint.Rise{}, false
	}
	if !exceeds(r.Low) {
		r.From = 0
		return checkpoint.Rise{}, false
	}
	if r.From == 0 {
		r.From = step
	}
	if step-r.From < g.cfg.Patience {
		return checkpoint.Rise{}, false
	}
	from := *r
	*r = checkpoint.Rise{Low: lvl, LowStep: g.center(step, n)}
	return from, true
}

// lossRise reports a loss level that stayed above its lowest by
// train.health.rise, and by three standard errors (a noisy minimum falls
// below the true one by chance), for train.health.patience steps.
func (g *healthGuard) lossRise(step int) (checkpoint.HealthEvent, bool) {
	s := g.s
	if len(s.Losses) < g.k {
		return checkpoint.HealthEvent{}, false
	}
	lvl, se := level(s.Losses)
	from, ok := g.rise(&s.Loss, step, len(s.Losses), lvl, func(low float64) bool { return lvl-low > g.cfg.Rise*low+3*se })
	if !ok {
		return checkpoint.HealthEvent{}, false
	}
	return checkpoint.HealthEvent{Step: step, Kind: EventRise, Value: lvl, Ref: from.Low, Since: from.LowStep, Instability: true,
		Message: fmt.Sprintf("the training loss is rising: its level %.4f at step %d is %.1f%% above its lowest, %.4f at step %d, and has been for %d steps",
			lvl, step, 100*(lvl/from.Low-1), from.Low, from.LowStep, step-from.From)}, true
}

// gradRise is lossRise for the gradient norm, from the end of the warmup
// (the norm is large at initialisation and falls fast) and by a factor.
func (g *healthGuard) gradRise(step int, gradNorm float64) (checkpoint.HealthEvent, bool) {
	s := g.s
	if step <= g.warmup {
		return checkpoint.HealthEvent{}, false
	}
	s.Grads = push(s.Grads, gradNorm, g.k)
	if len(s.Grads) < g.k {
		return checkpoint.HealthEvent{}, false
	}
	lvl, _ := level(s.Grads)
	from, ok := g.rise(&s.Grad, step, len(s.Grads), lvl, func(low float64) bool { return lvl > low*g.cfg.GradRise })
	if !ok {
		return checkpoint.HealthEvent{}, false
	}
	return checkpoint.HealthEvent{Step: step, Kind: EventGradRise, Value: lvl, Ref: from.Low, Since: from.LowStep, Instability: true,
		Message: fmt.Sprintf("the gradient norm is rising: its level %.3g at step %d is %.1fx its lowest after warmup, %.3g at step %d",
			lvl, step, lvl/from.Low, from.Low, from.LowStep)}, true
}

// observeVal takes the validation loss of eval step step.
func (g *healthGuard) observeVal(step int, val float64) []checkpoint.HealthEvent {
	if g.off() {
		return nil
	}
	s := g.s
	if s.ValBestStep == 0 || val < s.ValBest {
		s.ValBest, s.ValBestStep = val, step
		return nil
	}
	if val <= s.ValBest*(1+g.cfg.Rise) {
		return nil
	}
	return g.record([]checkpoint.HealthEvent{{Step: step, Kind: EventValRise, Value: val, Ref: s.ValBest, Since: s.ValBestStep, Instability: true,
		Message: fmt.Sprintf("the validation loss is rising: %.4f at step %d is %.1f%% above its best, %.4f at step %d",
			val, step, 100*(val/s.ValBest-1), s.ValBest, s.ValBestStep)}})
}

// atEnd reports a run that ends while its loss level is above its lowest
// by more than train.health.rise, a rise too young to have met the
// patience: no run ends "done" while its loss is rising.
func (g *healthGuard) atEnd(step int) []checkpoint.HealthEvent {
	s := g.s
	if g.off() || s.Loss.From == 0 {
		return nil
	}
	lvl, _ := level(s.Losses)
	return g.record([]checkpoint.HealthEvent{{Step: step, Kind: EventEndRising, Value: lvl, Ref: s.Loss.Low, Since: s.Loss.LowStep,
		Message: fmt.Sprintf("the run ends with its training loss rising: its level %.4f is %.1f%% above its lowest, %.4f at step %d",
			lvl, 100*(lvl/s.Loss.Low-1), s.Loss.Low, s.Loss.LowStep)}})
}

// record appends the advice to each event and keeps them in the state.
func (g *healthGuard) record(es []checkpoint.HealthEvent) []checkpoint.HealthEvent {
	for i := range es {
		es[i].Message += "; " + g.advice(es[i])
	}
	g.s.Events = append(g.s.Events, es...)
	return es
}

// advice says what to try, naming the keys of this run.
func (g *healthGuard) advice(e checkpoint.HealthEvent) string {
	if e.Kind == EventValRise && g.s.Loss.From == 0 {
		return "the training loss is not rising, so the model may be overfitting its data: more data or fewer steps (train.steps)"
	}
	try := []string{fmt.Sprintf("lower %s (now %g; docs/training.md gives the measured recipes)", g.lrKey, g.lr*g.s.LRScale),
		"lengthen the warmup (train.warmup_steps)"}
	if g.policy != config.InstabilityRollback {
		try = append(try, "or let the run roll back and lower the rate itself (train.on_instability=rollback)")
	}
	return "try: " + strings.Join(try, ", ")
}

// instability returns the first event of es that the policy acts on.
func instability(es []checkpoint.HealthEvent) (checkpoint.HealthEvent, bool) {
	i := slices.IndexFunc(es, func(e checkpoint.HealthEvent) bool { return e.Instability })
	if i < 0 {
		return checkpoint.HealthEvent{}, false
	}
	return es[i], true
}

// InstabilityError ends a run that train.on_instability=stop (or a
// rollback with none left) stopped. A runtime failure: exit 1.
type InstabilityError struct {
	Event checkpoint.HealthEvent
	Last  string // the newest checkpoint before the trouble began ("" if none)
	Why   string // why the run stopped rather than rolled back, if it was asked to
}

func (e *InstabilityError) Error() string {
	s := "training stopped (train.on_instability): " + e.Event.Message
	if e.Why != "" {
		s += "; " + e.Why
	}
	if e.Last != "" {
		return s + fmt.Sprintf("; the newest checkpoint from before step %d is %s: continue from it with a lower learning rate", e.Event.Since, e.Last)
	}
	return s + fmt.Sprintf("; no checkpoint precedes step %d: start again with a lower learning rate", e.Event.Since)
}

// healthSummary is the end-of-run summary's account of the guard.
func healthSummary(s *checkpoint.HealthState) string {
	if s == nil || len(s.Events) == 0 {
		return ""
	}
	kinds := map[string]int{}
	var order []string
	for _, e := range s.Events {
		if kinds[e.Kind] == 0 {
			order = append(order, e.Kind)
		}
		kinds[e.Kind]++
	}
	var parts []string
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%d %s", kinds[k], k))
	}
	first := s.Events[0]
	return fmt.Sprintf("training health: %s; the first at step %d: %s", strings.Join(parts, ", "), first.Step, first.Message)
}
