package train

import (
	"fmt"
	"math"
)

// DivergedError stops a run whose loss, gradient norm or weights stopped
// being finite. It is a runtime failure (exit 1), not bad input.
//
// Where it is caught: the loss and gradient norm are read from the device
// only on log steps (reading them every step would cost a GPU sync per
// step), so they are checked there and at every evaluation; in between, a
// divergence is caught by SaveCheckpoint, which checks every weight and
// moment on the host before it creates any file. A NaN never heals (it
// spreads to every weight through the next update), so no checkpoint of a
// diverged state is ever written and the good ones are neither replaced nor
// pruned.
type DivergedError struct {
	Step int
	What string
}

func (e *DivergedError) Error() string {
	return fmt.Sprintf("training diverged by step %d: %s; no checkpoint of this state was written and the earlier ones are kept. "+
		"Lower train.lr, set train.grad_clip (e.g. 1.0) or lengthen the warmup (train.warmup_ratio), then start again "+
		"(or --resume --allow-config-change from the last good checkpoint)", e.Step, e.What)
}

// checkFinite returns a DivergedError when v, the value called name at
// step, is NaN or infinite.
func checkFinite(step int, name string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return &DivergedError{Step: step, What: fmt.Sprintf("%s is %g", name, v)}
	}
	return nil
}
