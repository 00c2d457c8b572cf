//go:build linux && (amd64 || arm64)

package cuda

import (
	"github.com/compact-llm/compact/internal/gpu"
	"math"
	"testing"
)

// Stochastic rounding is integer arithmetic on the same fp32 bits, so the
// GPU must give the CPU's bits exactly: every element, at an offset that is
// not a multiple of the Philox block, with NaN, infinities, zeros,
// subnormals and values next to the bf16 overflow among the inputs.
func TestCUDAStochasticRoundBits(t *testing.T) {
	h := newHarness(t)
	const n = 100003
	src := make([]float32, n)
	for i := range src {
		src[i] = float32(h.rng.NormFloat64() * math.Pow(10, float64(h.rng.IntN(13)-8)))
	}
	specials := []float32{float32(math.NaN()), math.Float32frombits(0x7f800001), float32(math.Inf(1)), float32(math.Inf(-1)),
		0, float32(math.Copysign(0, -1)), math.Float32frombits(0x00000123), math.Float32frombits(0x80012345),
		math.Float32frombits(0x7f7fffff), math.Float32frombits(0xff7f8001), 1, -3.140625}
	copy(src[n/2:], specials)
	s := h.alloc(gpu.Full, n)
	d := h.alloc(gpu.Low, n)
	h.set(s, src)
	for _, rp := range []gpu.RoundParams{{Seed: 42, Stream: gpu.StreamWeights, Step: 1, Offset: 13},
		{Seed: 1<<40 + 5, Stream: gpu.StreamExpAvgSq, Step: 70000, Offset: 1 << 31}} {
		h.c.StochasticRound(d.c, s.c, 0, rp)
		h.g.StochasticRound(d.g, s.g, 0, rp)
		cv, _ := h.c.Download(d.c)
		gv, err := h.g.Download(d.g)
		if err != nil {
			t.Fatal(err)
		}
		bad := 0
		for i := range cv {
			if math.Float32bits(cv[i]) != math.Float32bits(gv[i]) {
				if bad < 5 {
					t.Errorf("%+v: element %d (%g): GPU %#x, CPU %#x", rp, i, src[i], math.Float32bits(gv[i]), math.Float32bits(cv[i]))
				}
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("%+v: %d of %d elements differ", rp, bad, n)
		}
	}
}
