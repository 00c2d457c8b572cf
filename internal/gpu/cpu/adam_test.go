package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/compact-llm/compact/internal/gpu"
)

// leanBench makes the tensors of the lean op tests on one backend.
type leanBench struct {
	t   *testing.T
	be  gpu.Backend
	rng *rand.Rand
}

// tensor uploads vals into a new tensor of precision p; Low values are
// rounded to the nearest bf16 first, as stored bf16 would hold them.
func (b leanBench) tensor(p gpu.Precision, vals []float32) *gpu.Tensor {
	b.t.Helper()
	x, err := b.be.Alloc("x", gpu.Optimizer, p, len(vals))
	if err != nil {
		b.t.Fatal(err)
	}
	v := append([]float32(nil), vals...)
	if p == gpu.Low {
		for i := range v {
			v[i] = gpu.BF16Nearest(v[i])
		}
	}
	if err := b.be.Upload(x, v); err != nil {
		b.t.Fatal(err)
	}
	return x
}

// clone is a copy of x in precision p (the staging of the unfused path).
func (b leanBench) clone(x *gpu.Tensor, p gpu.Precision) *gpu.Tensor {
	b.t.Helper()
	y, err := b.be.Alloc("y", gpu.Workspace, p, x.Len())
	if err != nil {
		b.t.Fatal(err)
	}
	if err := b.be.Copy(y, x); err != nil {
		b.t.Fatal(err)
	}
	return y
}

func (b leanBench) randn(n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(b.rng.NormFloat64() * scale)
	}
	return v
}

// sameBits fails unless x and y hold the same values bit for bit.
func (b leanBench) sameBits(what string, x, y *gpu.Tensor) {
	b.t.Helper()
	xs, ys := get(b.t, b.be, x), get(b.t, b.be, y)
	for i := range xs {
		if math.Float64bits(xs[i]) != math.Float64bits(ys[i]) {
			b.t.Fatalf("%s: %s element %d: fused %g, staged %g", b.be.Name(), what, i, xs[i], ys[i])
		}
	}
}

// Adam's bf16 stores give the bits of the staged path: the narrow tensors
// widened into Full copies, the fp32 step (weights or direction) on the
// copies, then StochasticRound of each rounded result with the same keys.
// Offsets that are not multiples of the Philox block (and differ between
// weights and moments) check the noise indexing; clip 0.7 the gradient
// scale; both backends, every combination of rounded operands.
func TestLeanOpsMatchStagedComposition(t *testing.T) {
	const n = 1003
	hp := gpu.AdamParams{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-6, WeightDecay: 0.1, Scale: 0.5, Step: 3, Form: gpu.AdamHF}
	for _, be := range []gpu.Backend{New(2), New64(2)} {
		b := leanBench{t, be, rand.New(rand.NewPCG(7, 8))}
		clip := b.tensor(gpu.Full, []float32{0.7})
		for _, c := range []struct{ weights, lowM, lowDir bool }{{true, true, true}, {true, false, false}, {false, true, true}, {false, true, false}} {
			name := fmt.Sprintf("%+v", c)
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
			w0, g := b.randn(n, 1), b.tensor(gpu.Full, b.randn(n, 0.1))
			m0, v0 := b.randn(n, 0.01), b.randn(n, 1e-3)
			for i := range v0 {
				v0[i] *= v0[i]
			}
			p, m, v := b.tensor(pPrec, w0), b.tensor(mPrec, m0), b.tensor(mPrec, v0)
			ps, ms, vs := b.clone(p, gpu.Full), b.clone(m, gpu.Full), b.clone(v, gpu.Full)
			be.Adam(gpu.AdamUpdate{Out: p, Grad: g, M: gpu.Moment{Data: m}, V: gpu.Moment{Data: v}, Clip: clip, Hyper: hp, Round: r})
			adamW(be, ps, g, ms, vs, clip, hp)
			b.storeStaged(name+" p", p, ps, c.weights, r.WeightParams())
			b.storeStaged(name+" m", m, ms, c.lowM, r.MomentParams(gpu.StreamExpAvg))
			b.storeStaged(name+" v", v, vs, c.lowM, r.MomentParams(gpu.StreamExpAvgSq))

			dir, dirS := b.tensor(dPrec, make([]float32, n)), b.tensor(dPrec, make([]float32, n))
			m, v = b.tensor(mPrec, m0), b.tensor(mPrec, v0)
			ms, vs = b.clone(m, gpu.Full), b.clone(v, gpu.Full)
			rd := r
			rd.Weights = false
			be.Adam(gpu.AdamUpdate{Out: dir, Grad: g, M: gpu.Moment{Data: m}, V: gpu.Moment{Data: v}, Clip: clip, Hyper: hp, Direction: true, Round: rd})
			adamDirection(be, dirS, g, ms, vs, clip, hp)
			b.sameBits(name+" direction", dir, dirS)
			b.storeStaged(name+" direction m", m, ms, c.lowM, r.MomentParams(gpu.StreamExpAvg))
			b.storeStaged(name+" direction v", v, vs, c.lowM, r.MomentParams(gpu.StreamExpAvgSq))
		}
	}
}

// storeStaged finishes the staged path of fused, whose staged fp32 result
// is staged: rounded into a fresh tensor of fused's precision when round,
// else the staged values themselves, and compares the bits.
func (b leanBench) storeStaged(what string, fused, staged *gpu.Tensor, round bool, rp gpu.RoundParams) {
	b.t.Helper()
	if !round {
		b.sameBits(what, fused, staged)
		return
	}
	want := b.tensor(gpu.Low, make([]float32, staged.Len()))
	b.be.StochasticRound(want, staged, 0, rp)
	b.sameBits(what, fused, want)
}

// StochasticRound with beta is w = SR(fl(fl(beta*w) + d)) in float32
// arithmetic with the noise of arena element Offset+i, and a tensor updated
// in pieces at their offsets gets the bits of one call.
func TestStochasticRoundBeta(t *testing.T) {
	const n = 517
	b := leanBench{t, New(2), rand.New(rand.NewPCG(5, 6))}
	w0, d0 := b.randn(n, 0.05), b.randn(n, 1e-4)
	rp := gpu.RoundParams{Seed: 77, Stream: gpu.StreamWeights, Step: 12, Offset: 1<<31 + 3}
	const decay = float32(1 - 1e-3*0.1)
	w, d := b.tensor(gpu.Low, w0), b.tensor(gpu.Full, d0)
	b.be.StochasticRound(w, d, decay, rp)
	got := get(t, b.be, w)
	up := 0
	for i := range got {
		wi := gpu.BF16Nearest(w0[i])
		x := float32(decay*wi) + d0[i]
		want := gpu.BF16Stochastic(x, gpu.RoundNoise(rp, rp.Offset+int64(i)))
		if float32(got[i]) != want {
			t.Fatalf("element %d: %g, want %g (SR of %g)", i, got[i], want, x)
		}
		if want != math.Float32frombits(math.Float32bits(x)&0xffff0000) {
			up++
		}
	}
	if up == 0 || up == n {
		t.Errorf("%d of %d values rounded up: not stochastic", up, n)
	}
	pieces := b.tensor(gpu.Low, w0)
	for _, cut := range [][2]int{{0, 6}, {6, 301}, {301, n}} {
		q := rp
		q.Offset += int64(cut[0])
		b.be.StochasticRound(pieces.Rows(cut[0], cut[1]), d.Rows(cut[0], cut[1]), decay, q)
	}
	b.sameBits("pieces", pieces, w)
}

// Adam over 8-bit moments against float64: each step, from the moments the
// backend holds (decoded), the new moments are the float64 Adam moments
// within the code's bound (gpu/quant8.go: 1/16 of the value, or the block's
// scale times 2^-15 for m and 2^-30 for v), and the weights take the
// float64 AdamW step computed from the unquantized new moments (the kernel
// forms the direction before it encodes them). A short last block, a view
// one block in, weights updated and the direction written.
func TestAdamInt8MatchesFloat64(t *testing.T) {
	const n, skip = 1000, gpu.QuantBlock
	blocks := (n + gpu.QuantBlock - 1) / gpu.QuantBlock
	for _, be := range []gpu.Backend{New(2), New64(2)} {
		for _, dir := range []bool{false, true} {
			b := leanBench{t, be, rand.New(rand.NewPCG(11, 12))}
			p := b.tensor(gpu.Full, b.randn(n+skip, 1)).Rows(skip, n+skip)
			g := b.tensor(gpu.Full, make([]float32, n))
			m, v := b.tensor(gpu.Code8, make([]float32, n+skip)).Rows(skip, n+skip), b.tensor(gpu.Code8, make([]float32, n+skip)).Rows(skip, n+skip)
			ms, vs := b.tensor(gpu.Full, make([]float32, blocks+1)).Rows(1, blocks+1), b.tensor(gpu.Full, make([]float32, blocks+1)).Rows(1, blocks+1)
			clip := b.tensor(gpu.Full, []float32{0.7})
			for step := 1; step <= 5; step++ {
				hp := gpu.AdamParams{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-6, WeightDecay: 0.1, Scale: 0.5, Step: step, Form: gpu.AdamHF}
				gv := make([]float32, n)
				for i := range gv {
					if i%97 != 5 {
						gv[i] = float32(b.rng.NormFloat64() * math.Pow(10, float64(b.rng.IntN(7)-6)))
					}
				}
				if err := be.Upload(g, gv); err != nil {
					t.Fatal(err)
				}
				m0, v0 := decode8(t, be, m, ms, true), decode8(t, be, v, vs, false)
				p0 := get(t, be, p)
				be.Adam(gpu.AdamUpdate{Out: p, Grad: g, M: gpu.Moment{Data: m, Scale: ms}, V: gpu.Moment{Data: v, Scale: vs},
					Clip: clip, Hyper: hp, Direction: dir, Round: gpu.AdamRounding{MomentOff: 3 * gpu.QuantBlock}})
				d1, d2 := hp.Corrections()
				m1, v1 := decode8(t, be, m, ms, true), decode8(t, be, v, vs, false)
				sm, sv := get(t, be, ms), get(t, be, vs)
				out := get(t, be, p)
				for i := range n {
					gc := float64(gv[i]) * float64(float32(0.7))
					b1, b2 := float64(hp.Beta1), float64(hp.Beta2)
					mr := b1*float64(m0[i]) + (1-b1)*gc
					vr := b2*float64(v0[i]) + (1-b2)*gc*gc
					if e := math.Abs(float64(m1[i]) - mr); e > math.Abs(mr)/16*1.001+math.Ldexp(sm[i/gpu.QuantBlock], -15)+1e-7*math.Abs(mr) {
						t.Fatalf("%s dir %v step %d element %d: m %g, float64 %g", be.Name(), dir, step, i, m1[i], mr)
					}
					if e := math.Abs(float64(v1[i]) - vr); e > vr/16*1.001+math.Ldexp(sv[i/gpu.QuantBlock], -30)+1e-7*vr {
						t.Fatalf("%s dir %v step %d element %d: v %g, float64 %g", be.Name(), dir, step, i, v1[i], vr)
					}
					d := float64(hp.Scale) * (mr / d1) / (math.Sqrt(vr/d2) + float64(hp.Eps))
					want := d
					if !dir {
						want = p0[i] - float64(hp.LR)*(d+float64(hp.WeightDecay)*p0[i])
					}
					if math.Abs(out[i]-want) > 1e-5*math.Max(math.Abs(want), math.Abs(d)) {
						t.Fatalf("%s dir %v step %d element %d: out %g, float64 %g", be.Name(), dir, step, i, out[i], want)
					}
				}
				if dir { // keep the weights as they were: the next step reads them
					if err := be.Upload(p, float32s(p0)); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
}

// decode8 is the values of 8-bit moments m with their block scales.
func decode8(t *testing.T, be gpu.Backend, m, scales *gpu.Tensor, signed bool) []float64 {
	t.Helper()
	codes, s := get(t, be, m), get(t, be, scales)
	out := make([]float64, len(codes))
	for i, c := range codes {
		out[i] = float64(gpu.Dequantize8(uint8(c), float32(s[i/gpu.QuantBlock]), signed))
	}
	return out
}

func float32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}
