package train

import "testing"

// A variant without a precision suffix is the fp32-master, fp32-moment
// engine whatever the config says (review finding: optimizer_state leaked
// into the plain variants' numbers).
func TestPlainVariantIgnoresConfigPrecision(t *testing.T) {
	cfg := Default()
	cfg.Train.Weights, cfg.Train.OptimizerState = WeightsBF16SR, StateBF16
	got := MemVariant{Name: "full+none", Recompute: "none"}.Apply(cfg)
	if got.Train.Weights != WeightsMaster || got.Train.OptimizerState != StateFP32 {
		t.Errorf("full+none applied to a bf16 config: weights %s, state %s; want master, fp32", got.Train.Weights, got.Train.OptimizerState)
	}
}
