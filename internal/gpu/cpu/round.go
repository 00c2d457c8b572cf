package cpu

// Stochastic rounding on the CPU: the reference of csrc/rounding.cu and of
// the rounded stores of csrc/optimizer.cu. The float64 backend rounds
// through float32 first, as a Full fp32 source would hold it.

import "github.com/compact-llm/compact/internal/gpu"

// noise hands out the rounding noise of consecutive elements of one
// rounding, drawing each Philox block of 4 once.
type noise struct {
	rp    gpu.RoundParams
	block int64
	lanes [4]uint32
}

func newNoise(rp gpu.RoundParams) noise { return noise{rp: rp, block: -1} }

// at is the noise of element i of the rounded tensor (arena element
// Offset+i).
func (n *noise) at(i int) uint32 {
	e := n.rp.Offset + int64(i)
	if b := e / 4; b != n.block {
		n.block, n.lanes = b, gpu.RoundNoiseBlock(n.rp, b)
	}
	return n.lanes[e%4]
}

// roundSR is x (rounded to float32 first, as an fp32 source holds it)
// stochastically rounded to bf16 with noise r.
func roundSR[T float32 | float64](x T, r uint32) T { return T(gpu.BF16Stochastic(float32(x), r)) }

// StochasticRound: dst = SR(fl(fl(beta*dst) + src)), each operation rounded
// to T on its own (the explicit conversion keeps Go from fusing them);
// beta 0 rounds src alone.
func (c *Backend[T]) StochasticRound(dst, src *gpu.Tensor, beta float32, rp gpu.RoundParams) {
	n := dst.Len()
	checkLen("StochasticRound src", src, n)
	checkRound("StochasticRound", rp, n)
	d, s, k := c.f(dst), c.f(src), T(beta)
	c.parallel(n, elemGrain, func(lo, hi int) {
		nz := newNoise(rp)
		for i := lo; i < hi; i++ {
			x := s[i]
			if beta != 0 {
				x = T(k*d[i]) + s[i]
			}
			d[i] = roundSR(x, nz.at(i))
		}
	})
}

// checkRound refuses a rounding of n elements outside the noise counter.
func checkRound(op string, rp gpu.RoundParams, n int) {
	if err := rp.CheckRange(n); err != nil {
		check(false, "%s: %v", op, err)
	}
}
