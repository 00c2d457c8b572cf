package config

// The run's optimizer settings: the config values of train.weights,
// train.optimizer_state, train.grad_accum_state and train.zero, and the
// optim.Config a config gives (the optimizer itself is internal/optim).

import (
	"github.com/compact-llm/compact/internal/optim"
)

// Config values of train.weights and train.optimizer_state.
const (
	WeightsAuto   = "auto"    // bf16_sr for CompAct runs, master for full rank
	WeightsMaster = "master"  // fp32 master copy, bf16 compute copy (CUDA)
	WeightsBF16SR = "bf16_sr" // bf16 weights only, updates stochastically rounded
	StateFP32     = "fp32"
	StateBF16     = "bf16"
	StateInt8     = "int8" // 8-bit block-quantized moments (gpu/quant8.go)
)

// WeightModes and OptimizerStates list the train.weights and
// train.optimizer_state values (optim owns the latter: StateFP32, StateBF16
// and StateInt8 are its names).
var (
	WeightModes     = []string{WeightsAuto, WeightsMaster, WeightsBF16SR}
	OptimizerStates = optim.StateNames
)

// GradAccumStates are the train.grad_accum_state values: the storage of the
// gradient sums of train.grad_accum > 1 micro-batches (fp32, or bf16 added
// with stochastic rounding: internal/model/accum.go).
var GradAccumStates = []string{StateFP32, StateBF16}

// BF16GradSums reports whether c sums its micro-batches' gradients in bf16:
// train.grad_accum_state bf16 with something to sum (train.grad_accum > 1;
// with 1 the setting has nothing to act on, and the run says so).
func (c Config) BF16GradSums() bool {
	return c.Train.GradAccumState == StateBF16 && c.Train.GradAccum > 1
}

// Zero values of train.zero.
const (
	ZeroOff   = 0 // every rank keeps the whole optimizer state
	ZeroState = 1 // ZeRO-1: the moments are sharded across the ranks
)

// MasterFree reports whether the run keeps bf16 weights without a master
// copy: train.weights bf16_sr, or auto for a CompAct run. On 60m and 32.8M
// tokens of real text (docs/training.md) CompAct r=0.25 with bf16_sr reached
// validation loss 2.2803 against 2.2814 with the fp32 master, so CompAct
// runs drop the master by default; full rank keeps it (2.2939 vs 2.2870).
func (c Config) MasterFree() bool {
	return c.Train.Weights == WeightsBF16SR || (c.Train.Weights == WeightsAuto && c.Compact.Enabled)
}

// Precision is the optimizer's storage of weights and moments under c (a
// validated config names a known state).
func (c Config) Precision() optim.Precision {
	st, _ := optim.ParseState(c.Train.OptimizerState)
	return optim.Precision{RoundWeights: c.MasterFree(), State: st, Seed: c.Train.Seed}
}

// OptimizerConfig is the optimizer of a run of c holding the whole state.
func (c Config) OptimizerConfig() optim.Config {
	t := c.Train
	return optim.Config{Beta1: t.Beta1, Beta2: t.Beta2, Eps: c.AdamEpsilon(), CompactEps: c.Compact.Eps,
		WeightDecay: t.WeightDecay, GradClip: t.GradClip, UpdateGap: c.Compact.UpdateGap, Form: c.AdamForm(),
		Precision: c.Precision()}
}

// Shard is the share of the optimizer state rank of world holds under
// c's train.zero.
func (c Config) Shard(rank, world int) optim.Shard {
	if c.Train.Zero != ZeroState || world <= 1 {
		return optim.Shard{}
	}
	return optim.Shard{Rank: rank, World: world}
}

// Schedule is the learning-rate schedule of a run of c.
func (c Config) Schedule() optim.Schedule {
	return optim.Schedule{LR: c.PeakLR(), Warmup: c.Warmup(), Total: c.Train.Steps, MinRatio: c.Train.MinLRRatio}
}
