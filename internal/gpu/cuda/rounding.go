//go:build linux && (amd64 || arm64)

package cuda

import "github.com/compact-llm/compact/internal/gpu"

// csrc/rounding.cu: stochastic rounding fp32 -> bf16 with the noise of
// gpu.RoundParams, one thread per Philox block of 4 arena elements.
type roundingKernels struct {
	round    stochasticRound
	decayAdd decayAddSR
}

func (k *roundingKernels) bindings() []binding {
	return []binding{
		{"stochastic_round_bf16", &k.round.kernel, 256},
		{"decay_add_sr_bf16", &k.decayAdd.kernel, 256},
	}
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
	checkRound("StochasticRound", rp, n)
	if n == 0 {
		return
	}
	c.k.rounding.round.launch(low(dst), full(src), n, rp)
}

type decayAddSR struct{ kernel }

func (k decayAddSR) launch(w devPtr[bf16], d devPtr[float32], n int64, decay float32, rp gpu.RoundParams) {
	k.run(k.elementwise(n), 0, w.arg(), d.arg(), argI64(n), argF32(decay),
		argU32(uint32(rp.Seed)), argU32(uint32(rp.Seed>>32)), argU32(rp.Stream), argU32(rp.Step), argI64(rp.Offset))
}

// DecayAddSR: w = SR(decay*w + d) in one launch; see gpu.Backend.
func (c *Backend) DecayAddSR(w, d *gpu.Tensor, decay float32, rp gpu.RoundParams) {
	n := int64(w.Len())
	check(int64(d.Len()) == n, "DecayAddSR: %s has %d elements, want %d", d, d.Len(), n)
	checkRound("DecayAddSR", rp, n)
	if n == 0 {
		return
	}
	c.k.rounding.decayAdd.launch(low(w), full(d), n, decay, rp)
}

// checkRound refuses a rounding of n elements outside the noise counter.
func checkRound(op string, rp gpu.RoundParams, n int64) {
	if err := rp.CheckRange(int(n)); err != nil {
		check(false, "%s: %v", op, err)
	}
}
