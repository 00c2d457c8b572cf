package config

// The settings of the training-health guard (internal/train/health.go):
// train.on_instability, what a run does about a loss that spikes or rises,
// and train.health.*, how the guard judges it.

import "fmt"

// Instability policies (train.on_instability).
const (
	InstabilityOff      = "off"      // no guard
	InstabilityWarn     = "warn"     // report only
	InstabilityStop     = "stop"     // report, then end the run with exit 1
	InstabilityRollback = "rollback" // report, go back to the last good checkpoint, skip the batches since, lower the lr
)

// InstabilityPolicies lists the train.on_instability values.
var InstabilityPolicies = []string{InstabilityOff, InstabilityWarn, InstabilityStop, InstabilityRollback}

// HealthConfig tunes the guard (train.health.*).
type HealthConfig struct {
	Window       int     `mapstructure:"window"`        // steps whose logged losses (and gradient norms) make one level
	Spike        float64 `mapstructure:"spike"`         // a logged loss this fraction above the level is a spike
	Rise         float64 `mapstructure:"rise"`          // the level this fraction above its lowest (or val above its best) is a rise
	Patience     int     `mapstructure:"patience"`      // steps a rise must last
	GradRise     float64 `mapstructure:"grad_rise"`     // the gradient-norm level this many times its lowest after warmup
	LRFactor     float64 `mapstructure:"lr_factor"`     // rollback: the learning rate is multiplied by this
	MaxRollbacks int     `mapstructure:"max_rollbacks"` // rollback: after this many, stop instead
}

// defaultHealth is what the guard runs with unless told otherwise.
func defaultHealth() HealthConfig {
	return HealthConfig{Window: 100, Spike: 0.15, Rise: 0.03, Patience: 100, GradRise: 4, LRFactor: 0.5, MaxRollbacks: 3}
}

// checkHealth validates train.on_instability and train.health.
func checkHealth(t TrainConfig) error {
	if err := oneOf("train.on_instability", t.OnInstability, InstabilityPolicies); err != nil {
		return err
	}
	h := t.Health
	switch {
	case h.Window < 1:
		return fmt.Errorf("train.health.window = %d: must be at least 1 step", h.Window)
	case h.Spike <= 0:
		return fmt.Errorf("train.health.spike = %g: must be positive", h.Spike)
	case h.Rise <= 0:
		return fmt.Errorf("train.health.rise = %g: must be positive", h.Rise)
	case h.Patience < 0:
		return fmt.Errorf("train.health.patience = %d: must not be negative", h.Patience)
	case h.GradRise <= 1:
		return fmt.Errorf("train.health.grad_rise = %g: must be above 1", h.GradRise)
	case h.LRFactor <= 0 || h.LRFactor >= 1:
		return fmt.Errorf("train.health.lr_factor = %g: must be in (0, 1)", h.LRFactor)
	case h.MaxRollbacks < 0:
		return fmt.Errorf("train.health.max_rollbacks = %d: must not be negative", h.MaxRollbacks)
	}
	return nil
}
