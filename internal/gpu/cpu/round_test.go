package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/compact-llm/compact/internal/gpu"
)

// The backend op rounds element i with the noise of arena element
// Offset+i, so rounding a tensor in chunks gives the bits of one call, on
// the float32 and the float64 backend alike.
func TestCPUStochasticRoundChunks(t *testing.T) {
	const n = 1003
	rng := rand.New(rand.NewPCG(3, 4))
	src := make([]float32, n)
	for i := range src {
		src[i] = float32(rng.NormFloat64())
	}
	for _, be := range []gpu.Backend{New(2), New64(2)} {
		s, _ := be.Alloc("src", gpu.Workspace, gpu.Full, n)
		d, _ := be.Alloc("dst", gpu.Weights, gpu.Low, n)
		be.Upload(s, src)
		rp := gpu.RoundParams{Seed: 99, Stream: gpu.StreamWeights, Step: 3, Offset: 17}
		be.StochasticRound(d, s, 0, rp)
		whole, _ := be.Download(d)
		for i, v := range whole {
			if want := gpu.BF16Stochastic(src[i], gpu.RoundNoise(rp, 17+int64(i))); math.Float32bits(v) != math.Float32bits(want) {
				t.Fatalf("%s: element %d = %g, want %g", be.Name(), i, v, want)
			}
		}
		be.Zero(d)
		for _, cut := range [][2]int{{0, 5}, {5, 514}, {514, n}} {
			q := rp
			q.Offset += int64(cut[0])
			be.StochasticRound(d.Rows(cut[0], cut[1]), s.Rows(cut[0], cut[1]), 0, q)
		}
		parts, _ := be.Download(d)
		for i := range parts {
			if math.Float32bits(parts[i]) != math.Float32bits(whole[i]) {
				t.Fatalf("%s: element %d rounded in chunks %g, whole %g", be.Name(), i, parts[i], whole[i])
			}
		}
	}
}
