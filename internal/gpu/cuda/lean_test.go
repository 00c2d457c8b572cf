//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"math"
	"testing"

	"github.com/compact-llm/compact/internal/gpu"
)

// sameBitsGPU fails unless two GPU tensors hold the same bits.
func sameBitsGPU(t *testing.T, g *Backend, what string, x, y *gpu.Tensor) {
	t.Helper()
	xs, err := g.Download(x)
	if err != nil {
		t.Fatal(err)
	}
	ys, err := g.Download(y)
	if err != nil {
		t.Fatal(err)
	}
	for i := range xs {
		if math.Float32bits(xs[i]) != math.Float32bits(ys[i]) {
			t.Fatalf("%s: element %d: fused %g, staged %g", what, i, xs[i], ys[i])
		}
	}
}

// gpuCopy is a fresh GPU tensor of precision p holding x (the staging of
// the unfused path: convert_bf16_to_f32 for a bf16 x).
func gpuCopy(t *testing.T, g *Backend, x *gpu.Tensor, p gpu.Precision) *gpu.Tensor {
	t.Helper()
	y, err := g.Alloc("staged", gpu.Workspace, p, x.Len())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Free(y) })
	if err := g.Copy(y, x); err != nil {
		t.Fatal(err)
	}
	return y
}

// The fused lean kernels (adamw_sr_*, adam_direction_sr_*) give the bits
// of the staged kernels they replace on the GPU (convert -> adamw /
// adam_direction -> stochastic_round_bf16), at offsets that are not Philox
// multiples, over a length with a tail, aligned and unaligned (a view one
// element in); and they follow the CPU reference (which runs Adam in
// float64) to bf16 accuracy.
func TestCUDALeanOptimizerOps(t *testing.T) {
	h := newHarness(t)
	const n = 4099
	hp := gpu.AdamParams{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-6, WeightDecay: 0.1, Scale: 0.5, Step: 3, Form: gpu.AdamHF}
	clip := h.alloc(gpu.Full, 1)
	h.set(clip, []float32{0.7})
	for _, skip := range []int{0, 1} {
		for _, c := range []struct{ weights, lowM, lowDir bool }{{true, true, true}, {true, false, true}, {false, true, true}, {false, true, false}} {
			name := fmt.Sprintf("%+v skip %d", c, skip)
			r := gpu.AdamRounding{Seed: 1<<33 + 9, Step: 3, Weights: c.weights, WeightOff: 13, MomentOff: 6}
			pPrec, mPrec, dPrec := gpu.Full, gpu.Full, gpu.Full
			if c.weights {
				pPrec = gpu.Low
			}
			if c.lowM {
				mPrec = gpu.Low
			}
			if c.lowDir {
				dPrec = gpu.Low
			}
			view := func(x pair) pair { return pair{x.c.Rows(skip, n+skip), x.g.Rows(skip, n+skip)} }
			p, g := view(h.randn(pPrec, 1, n+skip)), view(h.randn(gpu.Full, 0.1, n+skip))
			m, v := view(h.randn(mPrec, 0.01, n+skip)), view(h.alloc(mPrec, n+skip))
			vv := make([]float32, n)
			for i := range vv {
				vv[i] = roundBF16(float32(h.rng.Float64() * 1e-3))
			}
			h.set(v, vv)
			ps, ms, vs := gpuCopy(t, h.g, p.g, gpu.Full), gpuCopy(t, h.g, m.g, gpu.Full), gpuCopy(t, h.g, v.g, gpu.Full)
			h.c.AdamWSR(p.c, g.c, m.c, v.c, clip.c, hp, r)
			h.g.AdamWSR(p.g, g.g, m.g, v.g, clip.g, hp, r)
			h.g.AdamW(ps, g.g, ms, vs, clip.g, hp)
			stagedStore(t, h.g, name+" adamw p", p.g, ps, c.weights, r.WeightParams())
			stagedStore(t, h.g, name+" adamw m", m.g, ms, c.lowM, r.MomentParams(gpu.StreamExpAvg))
			stagedStore(t, h.g, name+" adamw v", v.g, vs, c.lowM, r.MomentParams(gpu.StreamExpAvgSq))
			h.expect(name+" adamw p vs CPU", p, tolBF16)
			h.expect(name+" adamw m vs CPU", m, tolBF16)

			dir, dirS := view(h.alloc(dPrec, n+skip)), view(h.alloc(dPrec, n+skip))
			ms, vs = gpuCopy(t, h.g, m.g, gpu.Full), gpuCopy(t, h.g, v.g, gpu.Full)
			h.c.AdamDirectionSR(dir.c, g.c, m.c, v.c, clip.c, hp, r)
			h.g.AdamDirectionSR(dir.g, g.g, m.g, v.g, clip.g, hp, r)
			h.g.AdamDirection(dirS.g, g.g, ms, vs, clip.g, hp)
			sameBitsGPU(t, h.g, name+" direction", dir.g, dirS.g)
			stagedStore(t, h.g, name+" direction m", m.g, ms, c.lowM, r.MomentParams(gpu.StreamExpAvg))
			stagedStore(t, h.g, name+" direction v", v.g, vs, c.lowM, r.MomentParams(gpu.StreamExpAvgSq))
			h.expect(name+" direction vs CPU", dir, tolBF16)
		}
	}
}

// stagedStore rounds the staged fp32 result into a fresh tensor of fused's
// precision when round (else takes it as it is) and compares the bits.
func stagedStore(t *testing.T, g *Backend, what string, fused, staged *gpu.Tensor, round bool, rp gpu.RoundParams) {
	t.Helper()
	if !round {
		sameBitsGPU(t, g, what, fused, staged)
		return
	}
	want, err := g.Alloc("rounded", gpu.Workspace, gpu.Low, staged.Len())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free(want)
	g.StochasticRound(want, staged, rp)
	sameBitsGPU(t, g, what, fused, want)
}

// decay_add_sr_bf16 is two correctly rounded fp32 operations and integer
// rounding, so the GPU gives the CPU's bits exactly, aligned and not.
func TestCUDADecayAddSRBits(t *testing.T) {
	h := newHarness(t)
	const n = 70001
	for _, skip := range []int{0, 3} {
		w, d := h.randn(gpu.Low, 0.05, n+skip), h.randn(gpu.Full, 1e-4, n+skip)
		wv, dv := pair{w.c.Rows(skip, n+skip), w.g.Rows(skip, n+skip)}, pair{d.c.Rows(skip, n+skip), d.g.Rows(skip, n+skip)}
		rp := gpu.RoundParams{Seed: 77, Stream: gpu.StreamWeights, Step: 12, Offset: 1<<31 + 3}
		h.c.DecayAddSR(wv.c, dv.c, 1-1e-3*0.1, rp)
		h.g.DecayAddSR(wv.g, dv.g, 1-1e-3*0.1, rp)
		cv, _ := h.c.Download(wv.c)
		gv, err := h.g.Download(wv.g)
		if err != nil {
			t.Fatal(err)
		}
		for i := range cv {
			if math.Float32bits(cv[i]) != math.Float32bits(gv[i]) {
				t.Fatalf("skip %d: element %d: GPU %g, CPU %g", skip, i, gv[i], cv[i])
			}
		}
	}
}
