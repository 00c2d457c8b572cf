package memreport

import (
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/model"
)

// A variant without a precision suffix is the fp32-master, fp32-moment
// engine whatever the config says (review finding: optimizer_state leaked
// into the plain variants' numbers).
func TestPlainVariantIgnoresConfigPrecision(t *testing.T) {
	cfg := config.Default()
	cfg.Train.Weights, cfg.Train.OptimizerState = config.WeightsBF16SR, config.StateBF16
	got := Variant{Name: "full+none", Recompute: "none"}.Apply(cfg)
	if got.Train.Weights != config.WeightsMaster || got.Train.OptimizerState != config.StateFP32 {
		t.Errorf("full+none applied to a bf16 config: weights %s, state %s; want master, fp32", got.Train.Weights, got.Train.OptimizerState)
	}
}

// memreport lists fused variants, applied with grad_clip 0 and the
// config's own accumulation (the fused step keeps it, with its gradient
// arena), and 8-bit moment variants.
func TestMemVariantsFused(t *testing.T) {
	var n int
	for _, v := range Variants([]float64{0.25, 0.5}, []string{"r0.25-bf16_sr-bf16-fused+"}) {
		n++
		d := config.Default()
		d.Train.GradAccum = 8
		cfg := v.Apply(d)
		if !cfg.Train.FusedUpdate || cfg.Train.GradClip != 0 || cfg.Train.GradAccum != 8 || cfg.Train.Weights != config.WeightsBF16SR || cfg.Train.OptimizerState != config.StateBF16 {
			t.Errorf("%s applies fused %v grad_clip %g grad_accum %d weights %s state %s", v.Name, cfg.Train.FusedUpdate, cfg.Train.GradClip, cfg.Train.GradAccum, cfg.Train.Weights, cfg.Train.OptimizerState)
		}
	}
	if n != len(model.RecomputeNames) {
		t.Errorf("%d fused variants of r0.25-bf16_sr-bf16, want one per recompute policy", n)
	}
	int8 := 0
	for _, v := range Variants([]float64{0.25, 0.5}, nil) {
		cfg := v.Apply(config.Default())
		if cfg.Train.FusedUpdate != strings.Contains(v.Name, "-fused") {
			t.Errorf("%s: fused_update %v", v.Name, cfg.Train.FusedUpdate)
		}
		if (cfg.Train.OptimizerState == config.StateInt8) != strings.Contains(v.Name, "-int8") {
			t.Errorf("%s: optimizer_state %s", v.Name, cfg.Train.OptimizerState)
		}
		if strings.Contains(v.Name, "-int8") {
			int8++
		}
	}
	// fused or not, 3 modes, every policy; and fused with o_proj compressed
	// (2 ranks), bf16 sums (full and 2 ranks) or both (2 ranks).
	if want := (2*3 + 2 + 3 + 2) * len(model.RecomputeNames); int8 != want {
		t.Errorf("%d int8 variants, want %d", int8, want)
	}
}
