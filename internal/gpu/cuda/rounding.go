//go:build linux && (amd64 || arm64)

package cuda

import "github.com/compact-llm/compact/internal/gpu"

// csrc/rounding.cu: stochastic rounding fp32 -> bf16 with the noise of
// gpu.RoundParams, after an optional beta * dst accumulate.
type roundingKernels struct {
	round stochasticRound
}

func (k *roundingKernels) bindings() []binding {
	return []binding{
		{"stochastic_round_bf16", &k.round.kernel, 256},
	}
}

type stochasticRound struct{ kernel }

func (k stochasticRound) launch(dst devPtr[bf16], src devPtr[float32], n int64, beta float32, rp gpu.RoundParams) {
	k.run(k.elementwise(n), 0, dst.arg(), src.arg(), argI64(n), argF32(beta),
		argU32(uint32(rp.Seed)), argU32(uint32(rp.Seed>>32)), argU32(rp.Stream), argU32(rp.Step), argI64(rp.Offset))
}

// StochasticRound: dst = SR(beta*dst + src) in one launch; see gpu.Backend.
func (c *Backend) StochasticRound(dst, src *gpu.Tensor, beta float32, rp gpu.RoundParams) {
	n := int64(dst.Len())
	check(int64(src.Len()) == n, "StochasticRound: %s has %d elements, want %d", src, src.Len(), n)
	checkRound("StochasticRound", rp, n)
	if n == 0 {
		return
	}
	c.k.rounding.round.launch(low(dst), full(src), n, beta, rp)
}

// checkRound refuses a rounding of n elements outside the noise counter.
func checkRound(op string, rp gpu.RoundParams, n int64) {
	if err := rp.CheckRange(int(n)); err != nil {
		check(false, "%s: %v", op, err)
	}
}
