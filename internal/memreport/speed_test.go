package memreport

import (
	"math"
	"testing"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/model"
)

// Full rank without recompute costs exactly what MFU counts
// (model.Config.TrainFLOPsPerToken), and at rank n/4 a compressed layer's
// weight gradient costs a quarter (SPEC section 9).
func TestFlopsMatchTheMFUCount(t *testing.T) {
	for _, c := range Calibrations {
		cfg := c.config("full")
		if got, want := flops(cfg).cost(1), cfg.Model.TrainFLOPsPerToken(cfg.Train.SeqLen); math.Abs(got-want) > 1e-9*want {
			t.Errorf("%s full rank: %g FLOPs per token, MFU counts %g", c.Name, got, want)
		}
		comp := flops(c.config("compact"))
		m := cfg.Model
		C, F := float64(m.Hidden), float64(m.Intermediate)
		compressed := float64(m.Layers) * (3*C*C + 3*C*F)
		saved := float64(m.Layers) * (2*(3*C*C+2*C*F)*0.75 + 2*C*F*(1-float64(resolveRank(0.25, m.Intermediate))/F))
		z := float64(m.Layers) * 2 * (2*C*float64(resolveRank(0.25, m.Hidden)) + F*float64(resolveRank(0.25, m.Intermediate)))
		if got, want := flops(cfg).step-comp.step, saved-z; math.Abs(got-want) > 1e-6*compressed {
			t.Errorf("%s: CompAct r=0.25 saves %g FLOPs per token, want %g", c.Name, got, want)
		}
	}
}

// The calibration: the model gives each measured lean/CompAct ratio
// exactly, a recomputed FLOP costs less than an average one (forward GEMMs
// run fast), and the CompAct/full ratio, which nothing is fitted to, is
// within 5% of the measured one.
func TestSpeedCalibration(t *testing.T) {
	for _, c := range Calibrations {
		w := c.RerunWeight()
		if w < 0.5 || w > 1 {
			t.Errorf("%s: rerun weight %.3f", c.Name, w)
		}
		lean, comp := c.config("lean"), c.config("compact")
		if got, want := Speed(lean, comp), c.Lean/c.CompAct; math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: lean/CompAct modelled %.4f, measured %.4f", c.Name, got, want)
		}
		if got, want := c.ModelledCompActOverFull(), c.CompAct/c.Full; math.Abs(got/want-1) > 0.05 {
			t.Errorf("%s: CompAct/full modelled %.3f, measured %.3f", c.Name, got, want)
		}
	}
}

// The order the model gives within one size: less recompute is faster,
// rank 0.25 faster than 0.5, precisions and the fused update free, and
// accumulation spreads the decompression over more tokens.
func TestSpeedOrder(t *testing.T) {
	base := Calibrations[3].config("compact")
	at := func(rank float64, rc model.Recompute, f func(*config.Config)) float64 {
		c := base
		c.Compact.Rank, c.Train.Recompute = rank, model.RecomputeNames[rc]
		if f != nil {
			f(&c)
		}
		return Speed(c, base)
	}
	for rc := model.RecomputeNone; rc < model.RecomputeBlock; rc++ {
		if at(0.25, rc, nil) <= at(0.25, rc+1, nil) || at(0.25, rc, nil) <= at(0.5, rc, nil) {
			t.Errorf("%s: %.3f, next policy %.3f, rank 0.5 %.3f", rc, at(0.25, rc, nil), at(0.25, rc+1, nil), at(0.5, rc, nil))
		}
	}
	lean := at(0.25, model.RecomputeNone, func(c *config.Config) {
		c.Train.Weights, c.Train.OptimizerState, c.Train.FusedUpdate = config.WeightsBF16SR, config.StateBF16, true
	})
	accum := at(0.25, model.RecomputeNone, func(c *config.Config) { c.Train.GradAccum = 8 })
	if lean != 1 || accum <= 1 || accum > 1.02 {
		t.Errorf("lean precisions %.4f (want 1), grad_accum 8 %.4f (want a little above 1)", lean, accum)
	}
}
