//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"math"
	"testing"

	"github.com/compact-llm/compact/internal/gpu"
)

// adamW is Backend.Adam updating unrounded weights p with moments m, v.
func adamW(b gpu.Backend, p, g, m, v, clip *gpu.Tensor, hp gpu.AdamParams) {
	b.Adam(gpu.AdamUpdate{Out: p, Grad: g, M: gpu.Moment{Data: m}, V: gpu.Moment{Data: v}, Clip: clip, Hyper: hp})
}

// adamDirection is Backend.Adam writing the direction into dir.
func adamDirection(b gpu.Backend, dir, g, m, v, clip *gpu.Tensor, hp gpu.AdamParams) {
	b.Adam(gpu.AdamUpdate{Out: dir, Grad: g, M: gpu.Moment{Data: m}, V: gpu.Moment{Data: v}, Clip: clip, Hyper: hp, Direction: true})
}

// expectStep compares what one step did to x on the GPU and on the CPU:
// ||(g - before) - (c - before)|| / ||c - before||. Comparing the tensors
// themselves would hide a wrong update: a step moves weights of size 1 by
// about lr, far inside bf16's tolerance.
func (h *harness) expectStep(what string, before []float32, x pair, tol float64) {
	h.t.Helper()
	cv, _ := h.c.Download(x.c)
	gv, err := h.g.Download(x.g)
	if err != nil {
		h.t.Fatal(err)
	}
	dc, dg := make([]float32, len(cv)), make([]float32, len(gv))
	for i := range cv {
		dc[i], dg[i] = cv[i]-before[i], gv[i]-before[i]
	}
	e, nan := relErr(dg, dc)
	switch {
	case nan >= 0:
		h.t.Errorf("%s: NaN at %d", what, nan)
	case !(e <= tol):
		h.t.Errorf("%s: the step's change, GPU vs CPU: rel err %.3g > %g", what, e, tol)
	default:
		h.t.Logf("%s: the step's change: rel err %.3g", what, e)
	}
}

// tolSRStep is expectStep's bound where the stepped tensor is bf16 with
// stochastic rounding: both backends draw the same noise, but a value that
// lands within fp32 rounding of a threshold may round the other way (one
// bf16 ulp, a few times per 10^4 elements); a missing or wrong-signed step
// gives 1 or 2.
const tolSRStep = 0.25

// stepTol is expectStep's bound for a tensor of precision p.
func stepTol(p gpu.Precision) float64 {
	if p == gpu.Low {
		return tolSRStep
	}
	return tolBF16
}

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
// an fp32 step: convert_bf16_to_f32 for a bf16 x).
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

// Adam's bf16 stores give the bits of the staged kernels on the GPU (convert
// -> the fp32 step -> stochastic_round_bf16), at offsets that are not Philox
// multiples, over a length with a tail, aligned and unaligned (a view one
// element in); and they follow the CPU reference (which runs Adam in
// float64) to bf16 accuracy.
func TestCUDAAdamRoundedStores(t *testing.T) {
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
			p0, m0, v0 := h.host(p.c), h.host(m.c), h.host(v.c)
			for _, be := range []struct {
				b       gpu.Backend
				p, m, v *gpu.Tensor
				g, clip *gpu.Tensor
			}{{h.c, p.c, m.c, v.c, g.c, clip.c}, {h.g, p.g, m.g, v.g, g.g, clip.g}} {
				be.b.Adam(gpu.AdamUpdate{Out: be.p, Grad: be.g, M: gpu.Moment{Data: be.m}, V: gpu.Moment{Data: be.v}, Clip: be.clip, Hyper: hp, Round: r})
			}
			adamW(h.g, ps, g.g, ms, vs, clip.g, hp)
			stagedStore(t, h.g, name+" adamw p", p.g, ps, c.weights, r.WeightParams())
			stagedStore(t, h.g, name+" adamw m", m.g, ms, c.lowM, r.MomentParams(gpu.StreamExpAvg))
			stagedStore(t, h.g, name+" adamw v", v.g, vs, c.lowM, r.MomentParams(gpu.StreamExpAvgSq))
			h.expectStep(name+" adamw p vs CPU", p0, p, stepTol(pPrec))
			h.expectStep(name+" adamw m vs CPU", m0, m, stepTol(mPrec))
			h.expectStep(name+" adamw v vs CPU", v0, v, stepTol(mPrec))

			dir, dirS := view(h.alloc(dPrec, n+skip)), view(h.alloc(dPrec, n+skip))
			ms, vs = gpuCopy(t, h.g, m.g, gpu.Full), gpuCopy(t, h.g, v.g, gpu.Full)
			rd := r
			rd.Weights = false
			h.c.Adam(gpu.AdamUpdate{Out: dir.c, Grad: g.c, M: gpu.Moment{Data: m.c}, V: gpu.Moment{Data: v.c}, Clip: clip.c, Hyper: hp, Direction: true, Round: rd})
			h.g.Adam(gpu.AdamUpdate{Out: dir.g, Grad: g.g, M: gpu.Moment{Data: m.g}, V: gpu.Moment{Data: v.g}, Clip: clip.g, Hyper: hp, Direction: true, Round: rd})
			adamDirection(h.g, dirS.g, g.g, ms, vs, clip.g, hp)
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
	g.StochasticRound(want, staged, 0, rp)
	sameBitsGPU(t, g, what, fused, want)
}

// StochasticRound with an accumulate is two correctly rounded fp32
// operations and integer rounding, so the GPU gives the CPU's bits exactly,
// aligned and not.
func TestCUDAStochasticRoundBetaBits(t *testing.T) {
	h := newHarness(t)
	const n = 70001
	for _, skip := range []int{0, 3} {
		w, d := h.randn(gpu.Low, 0.05, n+skip), h.randn(gpu.Full, 1e-4, n+skip)
		wv, dv := pair{w.c.Rows(skip, n+skip), w.g.Rows(skip, n+skip)}, pair{d.c.Rows(skip, n+skip), d.g.Rows(skip, n+skip)}
		rp := gpu.RoundParams{Seed: 77, Stream: gpu.StreamWeights, Step: 12, Offset: 1<<31 + 3}
		h.c.StochasticRound(wv.c, dv.c, 1-1e-3*0.1, rp)
		h.g.StochasticRound(wv.g, dv.g, 1-1e-3*0.1, rp)
		sameBitsPair(t, h, fmt.Sprintf("skip %d", skip), wv)
	}
}

// sameBitsPair fails unless the GPU tensor of x holds the CPU one's bits.
func sameBitsPair(t *testing.T, h *harness, what string, x pair) {
	t.Helper()
	cv, _ := h.c.Download(x.c)
	gv, err := h.g.Download(x.g)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cv {
		if math.Float32bits(cv[i]) != math.Float32bits(gv[i]) {
			t.Fatalf("%s: element %d: GPU %g (%#x), CPU %g (%#x)", what, i, gv[i], math.Float32bits(gv[i]), cv[i], math.Float32bits(cv[i]))
		}
	}
}

// int8 moments (adam_*_i8): with beta1 = beta2 = 0 the new moments are
// exactly g and g*g on both backends (the CPU's float64 step rounds to the
// GPU's fp32 one), so every code and every block scale must be the CPU's
// bit for bit: this checks the 8-bit code of internal/gpu/quant8.go on the
// device, over gradients spanning 12 decades with zeros, a short last block,
// a view that starts one block in, weights in fp32 and rounded bf16, and the
// direction. A second step with Adam's usual betas from the quantized state
// follows the CPU within the code's own precision (1/16 relative).
func TestCUDAAdamInt8MatchesCPU(t *testing.T) {
	h := newHarness(t)
	const n, skip = 1000, gpu.QuantBlock // 7 full blocks and one of 104
	blocks := (n + gpu.QuantBlock - 1) / gpu.QuantBlock
	for _, c := range []struct {
		out       gpu.Precision
		direction bool
	}{{gpu.Full, false}, {gpu.Low, false}, {gpu.Full, true}, {gpu.Low, true}} {
		name := fmt.Sprintf("out %d direction %v", c.out, c.direction)
		view := func(x pair, lo, hi int) pair { return pair{x.c.Rows(lo, hi), x.g.Rows(lo, hi)} }
		out := view(h.randn(c.out, 1, n+skip), skip, n+skip)
		g := view(h.alloc(gpu.Full, n+skip), skip, n+skip)
		gv := make([]float32, n)
		for i := range gv {
			if i%97 != 5 { // zeros inside blocks
				gv[i] = float32(h.rng.NormFloat64() * math.Pow(10, float64(h.rng.IntN(13)-10)))
			}
		}
		h.set(g, gv)
		m, v := view(h.alloc(gpu.Code8, n+skip), skip, n+skip), view(h.alloc(gpu.Code8, n+skip), skip, n+skip)
		ms, vs := view(h.alloc(gpu.Full, blocks+1), 1, blocks+1), view(h.alloc(gpu.Full, blocks+1), 1, blocks+1)
		r := gpu.AdamRounding{Seed: 99, Step: 1, Weights: c.out == gpu.Low && !c.direction, WeightOff: 7, MomentOff: 3 * gpu.QuantBlock}
		out0 := h.host(out.c)
		step := func(hp gpu.AdamParams) {
			for _, be := range []struct {
				b                   gpu.Backend
				out, g, m, v, a, b2 *gpu.Tensor
			}{{h.c, out.c, g.c, m.c, v.c, ms.c, vs.c}, {h.g, out.g, g.g, m.g, v.g, ms.g, vs.g}} {
				be.b.Adam(gpu.AdamUpdate{Out: be.out, Grad: be.g, M: gpu.Moment{Data: be.m, Scale: be.a}, V: gpu.Moment{Data: be.v, Scale: be.b2},
					Hyper: hp, Direction: c.direction, Round: r})
			}
		}
		step(gpu.AdamParams{LR: 1e-3, Beta1: 0, Beta2: 0, Eps: 1e-6, WeightDecay: 0.1, Scale: 1, Step: 1})
		for _, x := range []struct {
			what string
			p    pair
		}{{"m codes", m}, {"v codes", v}, {"m scales", ms}, {"v scales", vs}} {
			sameBitsPair(t, h, name+" "+x.what, x.p)
		}
		if c.direction {
			h.expect(name+" out", out, tolBF16)
		} else {
			h.expectStep(name+" out", out0, out, stepTol(c.out))
		}
		r.Step = 2
		step(gpu.AdamParams{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-6, WeightDecay: 0.1, Scale: 1, Step: 2})
		for _, x := range []struct {
			what   string
			p      pair
			scales pair
			signed bool
		}{{"m", m, ms, true}, {"v", v, vs, false}} {
			cv, gv := decoded(t, h.c, x.p.c, x.scales.c, x.signed), decoded(t, h.g, x.p.g, x.scales.g, x.signed)
			if e, _ := relErr(gv, cv); e > 1.0/16 {
				t.Errorf("%s second step: decoded %s GPU vs CPU rel err %.3g > 1/16", name, x.what, e)
			}
		}
		if c.direction {
			h.expect(name+" out after two steps", out, 1.0/16)
		} else { // from moments that agree to 1/16
			h.expectStep(name+" out after two steps", out0, out, max(stepTol(c.out), 1.0/8))
		}
	}
}

// decoded is the values of 8-bit moments codes with their block scales.
func decoded(t *testing.T, b gpu.Backend, codes, scales *gpu.Tensor, signed bool) []float32 {
	t.Helper()
	cv, err := b.Download(codes)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := b.Download(scales)
	if err != nil {
		t.Fatal(err)
	}
	c8 := make([]uint8, len(cv))
	for i, x := range cv {
		c8[i] = uint8(x)
	}
	out := make([]float32, len(cv))
	gpu.DequantizeBlocks(c8, sv, out, signed)
	return out
}

// A bf16 gradient (the sums of train.grad_accum_state bf16: the
// adam_*_gbf16 variants) is read as its exact fp32 value: Adam from it gives
// the bits of Adam from an fp32 copy of it, for fp32 and bf16 weights, the
// direction, and fp32, bf16 and 8-bit moments, vectorised (aligned) and
// elementwise (a view one element in), over a length with a tail; and it
// follows the CPU's step from the same Low gradient to bf16 accuracy.
func TestCUDAAdamBF16Gradient(t *testing.T) {
	h := newHarness(t)
	const n = 4099
	hp := gpu.AdamParams{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-6, WeightDecay: 0.1, Scale: 0.5, Step: 3, Form: gpu.AdamHF}
	blocks := (n + gpu.QuantBlock - 1) / gpu.QuantBlock
	for _, skip := range []int{0, 1} {
		for _, state := range []gpu.Precision{gpu.Full, gpu.Low, gpu.Code8} {
			for _, out := range []struct {
				prec gpu.Precision
				dir  bool
			}{{gpu.Full, false}, {gpu.Low, false}, {gpu.Low, true}} {
				name := fmt.Sprintf("skip %d state %d out %d direction %v", skip, state, out.prec, out.dir)
				view := func(x pair) pair { return pair{x.c.Rows(skip, n+skip), x.g.Rows(skip, n+skip)} }
				g16 := view(h.randn(gpu.Low, 0.1, n+skip))
				g32 := gpuCopy(t, h.g, g16.g, gpu.Full)
				w := view(h.randn(out.prec, 1, n+skip))
				w32 := gpuCopy(t, h.g, w.g, out.prec) // the same values, stepped from g32
				w0 := h.host(w.c)
				r := gpu.AdamRounding{Seed: 5, Step: 3, Weights: out.prec == gpu.Low && !out.dir, WeightOff: 11, MomentOff: gpu.QuantBlock}
				// Two moment sets from zero on the GPU (bf16 and fp32
				// gradient), one on the CPU.
				moments := func() (m, v, ms, vs pair) {
					m, v = h.alloc(state, n), h.alloc(state, n)
					if state == gpu.Code8 {
						ms, vs = h.alloc(gpu.Full, blocks), h.alloc(gpu.Full, blocks)
					}
					return m, v, ms, vs
				}
				upd := func(outT, g, m, v, ms, vs *gpu.Tensor) gpu.AdamUpdate {
					return gpu.AdamUpdate{Out: outT, Grad: g, M: gpu.Moment{Data: m, Scale: ms}, V: gpu.Moment{Data: v, Scale: vs},
						Hyper: hp, Direction: out.dir, Round: r}
				}
				m, v, ms, vs := moments()
				m2, v2, ms2, vs2 := moments()
				h.g.Adam(upd(w.g, g16.g, m.g, v.g, ms.g, vs.g))
				h.g.Adam(upd(w32, g32, m2.g, v2.g, ms2.g, vs2.g))
				h.c.Adam(upd(w.c, g16.c, m.c, v.c, ms.c, vs.c))
				sameBitsGPU(t, h.g, name+" out", w.g, w32)
				sameBitsGPU(t, h.g, name+" m", m.g, m2.g)
				sameBitsGPU(t, h.g, name+" v", v.g, v2.g)
				if state == gpu.Code8 {
					sameBitsGPU(t, h.g, name+" m scales", ms.g, ms2.g)
					sameBitsGPU(t, h.g, name+" v scales", vs.g, vs2.g)
				}
				if out.dir {
					h.expect(name+" out vs CPU", w, tolBF16)
				} else {
					h.expectStep(name+" out vs CPU", w0, w, stepTol(out.prec))
				}
			}
		}
	}
}
