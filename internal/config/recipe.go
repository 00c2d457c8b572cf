package config

// The recipe of a run resolved from its config: one config file serves a
// CompAct run and its full-rank baseline, each at its own learning rate and
// optimizer form, as the CompAct paper trains them.

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
)

// Optimizer forms (train.optimizer).
const (
	OptimizerAuto  = "auto"        // adamw_hf with CompAct on, adamw_torch without
	OptimizerHF    = "adamw_hf"    // transformers' AdamW: bias correction in the step size (the CompAct code's)
	OptimizerTorch = "adamw_torch" // torch.optim.AdamW: mhat / (sqrt(vhat) + eps)
)

// Optimizers lists the train.optimizer values.
var Optimizers = []string{OptimizerAuto, OptimizerHF, OptimizerTorch}

// Default epsilons of the two forms, as their libraries have them.
const (
	hfEps    = 1e-6
	torchEps = 1e-8
)

// PeakLR is the peak learning rate of the run: compact.lr when CompAct is on
// and it is set, else train.lr (the full-rank recipe's).
func (c Config) PeakLR() float64 {
	if c.Compact.Enabled && c.Compact.LR > 0 {
		return c.Compact.LR
	}
	return c.Train.LR
}

// PeakLRKey names the key PeakLR came from.
func (c Config) PeakLRKey() string {
	if c.Compact.Enabled && c.Compact.LR > 0 {
		return "compact.lr"
	}
	return "train.lr"
}

// OptimizerName resolves train.optimizer: auto is the HF form for CompAct
// runs (what the paper trained with) and the torch form for full rank.
func (c Config) OptimizerName() string {
	if c.Train.Optimizer != OptimizerAuto && c.Train.Optimizer != "" {
		return c.Train.Optimizer
	}
	if c.Compact.Enabled {
		return OptimizerHF
	}
	return OptimizerTorch
}

// AdamForm is OptimizerName as the backends' form.
func (c Config) AdamForm() gpu.AdamForm {
	if c.OptimizerName() == OptimizerHF {
		return gpu.AdamHF
	}
	return gpu.AdamTorch
}

// AdamEpsilon is train.adam_eps, or when 0 the form's default: 1e-6 for the
// HF form (so every parameter uses the paper's 1e-6), 1e-8 for torch's.
func (c Config) AdamEpsilon() float64 {
	if c.Train.AdamEps > 0 {
		return c.Train.AdamEps
	}
	if c.OptimizerName() == OptimizerHF {
		return hfEps
	}
	return torchEps
}

// RecipeLine is the resolved recipe as the run prints it at start.
func (c Config) RecipeLine() string {
	t := c.Train
	s := fmt.Sprintf("recipe: lr %g (%s), warmup %d steps, cosine to %g x lr; optimizer %s (eps %g, betas %g/%g, weight_decay %g); grad_clip %g",
		c.PeakLR(), c.PeakLRKey(), c.Warmup(), t.MinLRRatio, c.OptimizerName(), c.AdamEpsilon(), t.Beta1, t.Beta2, t.WeightDecay, t.GradClip)
	if c.Compact.Enabled {
		cc := c.Compact
		s += fmt.Sprintf("; compact rank %g, alpha %g, o_proj scale %g, update_gap %d, eps %g", cc.Rank, cc.Alpha, cc.OProjScale*cc.Alpha, cc.UpdateGap, cc.Eps)
	}
	return s
}
