//go:build linux && (amd64 || arm64)

package cuda

import "github.com/compact-llm/compact/internal/gpu"

// csrc/rounding.cu: stochastic rounding fp32 -> bf16 with the noise of
// gpu.RoundParams, one thread per Philox block of 4 arena elements.
type roundingKernels struct{ round stochasticRound }

func (k *roundingKernels) bindings() []binding {
	return []binding{{"stochastic_round_bf16", &k.round.kernel, 256}}
}

type stochasticRound struct{ kernel }

func (k stochasticRound) launch(dst devPtr[bf16], src devPtr[float32], n int64, rp gpu.RoundParams) {
	philoxBlocks := (rp.Offset+n+3)/4 - rp.Offset/4
	k.run(k.strided(philoxBlocks, int64(k.block), 32), 0, dst.arg(), src.arg(), argI64(n),
		argU32(uint32(rp.Seed)), argU32(uint32(rp.Seed>>32)), argU32(rp.Stream), argU32(rp.Step), argI64(rp.Offset))
}

// StochasticRound rounds src (Full) into dst (Low); see gpu.RoundParams.
func (c *Backend) StochasticRound(dst, src *gpu.Tensor, rp gpu.RoundParams) {
	n := int64(dst.Len())
	check(int64(src.Len()) == n, "StochasticRound: %s has %d elements, want %d", src, src.Len(), n)
	check(rp.Offset >= 0 && rp.Offset+n <= gpu.MaxRoundElements,
		"StochasticRound: elements [%d, %d) outside the noise counter's range", rp.Offset, rp.Offset+n)
	if n == 0 {
		return
	}
	c.k.rounding.round.launch(low(dst), full(src), n, rp)
}
