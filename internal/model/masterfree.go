package model

import "github.com/compact-llm/compact/internal/gpu"

// Master-free training keeps the weights in bf16 only. The CUDA backend
// stores them as bf16 anyway; the CPU backend stores float32, so every value
// that enters the weights from outside (initialisation, checkpoints, a
// fine-tuning base) is rounded to the nearest bf16 here, exactly as a CUDA
// upload rounds it, and the optimizer's updates arrive stochastically
// rounded (gpu.Backend.StochasticRound). Both backends then hold the same
// bf16 values.

// roundWeights rounds host values bound for the weights to bf16 in place
// when the model is master-free; otherwise it leaves them as they are.
func (m *Model) roundWeights(data []float32) {
	if !m.Opts.MasterFree {
		return
	}
	for i, v := range data {
		data[i] = gpu.BF16Nearest(v)
	}
}
