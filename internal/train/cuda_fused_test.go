//go:build linux && (amd64 || arm64)

package train

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cuda"
	"github.com/compact-llm/compact/internal/model"
)

// Fused against unfused steps on the GPU. Each param takes the same kernels
// on a sub-range instead of its whole segment, so the values should agree;
// the tolerance covers reductions whose order the GPU may not fix (the
// embedding backward, the norm) and the bf16 rounding of the weights, where
// a last-ulp difference can flip a rounding: within 2 bf16 ulps (2^-6
// relative) after three steps that cross a projection resample. With
// gradient accumulation (2 micro-batches: the fused step keeps the arena and
// updates in the last backward) and with 8-bit moments likewise; with
// o_proj compressed, and with bf16 gradient sums (adam_*_gbf16 reading
// them, stochastic_round_bf16 adding each micro-batch in).
func TestCUDAFusedStepMatchesUnfused(t *testing.T) {
	g, err := cuda.New(0)
	if err != nil {
		t.Skipf("no usable CUDA device: %v", err)
	}
	defer g.Close()
	for _, c := range []struct {
		name  string
		lean  bool
		tied  bool
		accum int
		state string
	}{{"master", false, false, 1, ""}, {"bf16_sr-bf16", true, false, 1, ""}, {"bf16_sr-bf16-tied", true, true, 1, ""},
		{"bf16_sr-bf16 accum 2", true, false, 2, ""}, {"master accum 2", false, false, 2, ""},
		{"bf16_sr-int8", true, false, 1, config.StateInt8}, {"bf16_sr-int8 accum 2", true, false, 2, config.StateInt8},
		{"oproj-bf16_sr-int8 accum 2", true, false, 2, config.StateInt8},
		{"bf16_sr-int8 accum 2 bf16 sums", true, false, 2, config.StateInt8}, {"master accum 4 bf16 sums", false, false, 4, ""},
		{"oproj-bf16_sr-bf16-tied accum 2 bf16 sums", true, true, 2, ""}} {
		cfg := leanConfig(true)
		if strings.HasSuffix(c.name, "bf16 sums") {
			cfg.Train.GradAccumState = config.StateBF16
		}
		if strings.HasPrefix(c.name, "oproj") {
			cfg.Compact.Layers = model.CompressibleLayers
		}
		if c.lean {
			cfg = leanVariant(cfg)
		}
		if c.state != "" {
			cfg.Train.OptimizerState = c.state
		}
		cfg.Model.TieEmbeddings = c.tied
		cfg.Model.Hidden, cfg.Model.Intermediate, cfg.Model.Heads, cfg.Model.KVHeads = 128, 344, 2, 1
		cfg.Compact.UpdateGap = 2
		ms, opts := fusedPair(t, func() gpu.Backend { return g }, cfg, c.accum)
		rng := rand.New(rand.NewPCG(5, 6))
		B, T := 2, 16
		for step := 1; step <= 3; step++ {
			mbs := make([][2][]int32, c.accum)
			for i := range mbs {
				in, tg := randomBatch(rng, B*T, cfg.Model.VocabSize)
				mbs[i] = [2][]int32{in, tg}
			}
			l0 := accumStep(t, ms[0], opts[0], mbs, B, T, 0.01)
			l1 := accumStep(t, ms[1], opts[1], mbs, B, T, 0.01)
			g0, err := opts[0].GradNorm()
			if err != nil {
				t.Fatal(err)
			}
			g1, err := opts[1].GradNorm()
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(l0-l1) > 1e-3*math.Abs(l0) || math.Abs(g0-g1) > 1e-3*g0 {
				t.Fatalf("%s step %d: loss %v / %v, gradient norm %v / %v (unfused / fused)", c.name, step, l0, l1, g0, g1)
			}
		}
		for i, p := range ms[0].Params {
			q := ms[1].Params[i]
			a, b := mustRead(t, ms[0], p, p.W), mustRead(t, ms[1], q, q.W)
			for j := range a {
				if d := math.Abs(float64(a[j] - b[j])); d > 1e-6+math.Ldexp(math.Max(math.Abs(float64(a[j])), math.Abs(float64(b[j]))), -6) {
					t.Fatalf("%s: %s element %d: unfused %v, fused %v", c.name, p.Name, j, a[j], b[j])
				}
			}
		}
		for i := range ms {
			opts[i].Free()
			ms[i].Free()
		}
	}
}
