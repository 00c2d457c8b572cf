package model

import "github.com/compact-llm/compact/internal/gpu"

// bf16 gradient sums (Options.GradAccumBF16, train.grad_accum_state bf16).
// With gradient accumulation a step's gradients need a home across its
// micro-batches: the gradient arena. In fp32 it is the largest buffer of a
// lean accumulating run after the weights (llama-1b: 2.17 GiB, llama-7b:
// 8.51); in bf16 it is half that. The backward's GEMMs and reductions
// still accumulate in fp32, into the scratch the fused update uses without
// accumulation (one block's worth, and one embedding-sized buffer:
// fused.go), and each group's pass gradient is added into the bf16 sums as
// soon as the pass has finished it, at the points where a fused update
// would update it (gradsDone):
//
//	Grad = SR(fl(Grad + passGrad))   (Backend.StochasticRound, beta 1)
//
// rounded stochastically with the rule of the master-free weights
// (gpu/rounding.go), keyed by (GradAccumSeed, StreamGradAccum + pass,
// step, gradient-layout element): unbiased, the same bits on CPU and CUDA,
// and a noise of its own for every micro-batch of every step. The scratch
// is then zeroed for the next group. The optimizer reads the bf16 sums
// (its Adam kernel and the norm take a Low gradient), so the update
// follows the sums whether it runs after the pass or fused into the last
// micro-batch's backward, and the two give the same bits on the CPU.
//
// With grad_accum 1 there is nothing to sum: the gradients stay fp32 (the
// run says so: train's notices).

// lowSums reports whether the step's gradients are summed in bf16.
func (m *Model) lowSums() bool { return m.Opts.GradAccumBF16 && m.Opts.GradAccum > 1 }

// SetStep names the optimizer step (1-based) whose gradients the coming
// training passes form: the key of the bf16 sums' rounding noise.
func (m *Model) SetStep(step int) { m.step = uint32(step) }

// gradsDone is called as soon as a training pass has finished the
// gradients of ps, whose pass gradients live in buf: with bf16 sums they
// are added into the sums and buf is cleared; then a fused step's last pass
// hands them to the optimizer (updateNow).
func (m *Model) gradsDone(buf *gpu.Tensor, ps ...*Param) {
	if m.lowSums() {
		for _, p := range ps {
			m.be.StochasticRound(p.Grad, p.passGrad, 1, gpu.RoundParams{Seed: m.Opts.GradAccumSeed,
				Stream: gpu.StreamGradAccum + uint32(m.pass), Step: m.step, Offset: int64(p.GradOff)})
		}
		m.be.Zero(buf)
	}
	m.updateNow(buf, ps...)
}
