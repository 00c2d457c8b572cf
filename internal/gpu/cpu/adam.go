package cpu

// Backend.Adam on the CPU, the readable reference of csrc/optimizer.cu (the
// math is at the top of internal/gpu/adam.go). Each element takes the
// arithmetic of one Adam step in float64, rounded to T where it is stored;
// its stores are then those of gpu.AdamUpdate: T as computed (Full, the
// CPU's float weights), stochastically rounded bf16 (rounded weights, Low
// moments), the nearest bf16 (a Low direction), or, for 8-bit moments,
// each block's new values encoded by gpu.Quantize8 once the whole block is
// updated.

import (
	"math"

	"github.com/compact-llm/compact/internal/gpu"
)

// adam holds one step's constants in float64.
type adam struct {
	b1, b2, bc1, bc2, eps, scale, lr, wd, clip float64
}

func (c *Backend[T]) adamConsts(clip *gpu.Tensor, hp gpu.AdamParams) adam {
	a := adam{b1: float64(hp.Beta1), b2: float64(hp.Beta2), eps: float64(hp.Eps),
		scale: float64(hp.Scale), lr: float64(hp.LR), wd: float64(hp.WeightDecay), clip: 1}
	a.bc1, a.bc2 = hp.Corrections()
	if clip != nil {
		a.clip = float64(c.f(clip)[0])
	}
	return a
}

// moments updates m, v from gradient g (already clipped) and returns the
// scaled Adam direction, computed from the new values as T holds them (a
// kernel that writes them back computes it from its registers likewise).
func moments[T float32 | float64](a *adam, g float64, m, v *T) float64 {
	*m = T(a.b1*float64(*m) + (1-a.b1)*g)
	*v = T(a.b2*float64(*v) + (1-a.b2)*g*g)
	mhat, vhat := float64(*m)/a.bc1, float64(*v)/a.bc2
	return a.scale * mhat / (math.Sqrt(vhat) + a.eps)
}

// weight is AdamW's new value of weight x given the scaled direction.
func (a *adam) weight(x, dir float64) float64 { return x - a.lr*(dir+a.wd*x) }

// direction is the stored direction: rounded to the nearest bf16 for a Low
// dir, as CUDA stores it.
func direction(d float64, low bool) float64 {
	if low {
		return float64(gpu.BF16Nearest(float32(d)))
	}
	return d
}

// adamOut stores element i of Out given its direction d: the direction
// itself, or the AdamW weight (rounded when the weights are).
type adamOut[T float32 | float64] struct {
	a      *adam
	out    []T
	dir    bool // Out is the direction
	lowDir bool // ... stored in bf16
	round  bool // Out is rounded weights
}

func (o adamOut[T]) store(i int, d float64, w *noise) {
	if o.dir {
		o.out[i] = T(direction(d, o.lowDir))
		return
	}
	x := T(o.a.weight(float64(o.out[i]), d))
	if o.round {
		x = roundSR(x, w.at(i))
	}
	o.out[i] = x
}

// Adam is gpu.Backend.Adam.
func (c *Backend[T]) Adam(u gpu.AdamUpdate) {
	if err := u.Check(); err != nil {
		check(false, "%v", err)
	}
	a := c.adamConsts(u.Clip, u.Hyper)
	out := adamOut[T]{a: &a, out: c.f(u.Out), dir: u.Direction, lowDir: u.Out.Prec == gpu.Low, round: u.Round.Weights}
	if u.Quantized() {
		c.adam8(u, &a, out)
		return
	}
	n, gd, md, vd := u.Out.Len(), c.f(u.Grad), c.f(u.M.Data), c.f(u.V.Data)
	lowM := u.M.Data.Prec == gpu.Low
	c.parallel(n, elemGrain, func(lo, hi int) {
		nw, nm, nv := newNoise(u.Round.WeightParams()), newNoise(u.Round.MomentParams(gpu.StreamExpAvg)), newNoise(u.Round.MomentParams(gpu.StreamExpAvgSq))
		for i := lo; i < hi; i++ {
			mi, vi := md[i], vd[i]
			out.store(i, moments(&a, float64(gd[i])*a.clip, &mi, &vi), &nw)
			if lowM {
				mi, vi = roundSR(mi, nm.at(i)), roundSR(vi, nv.at(i))
			}
			md[i], vd[i] = mi, vi
		}
	})
}

// adam8 is Adam over 8-bit moments, one block of gpu.QuantBlock elements at
// a time: decode, update every element, encode the block's new values.
func (c *Backend[T]) adam8(u gpu.AdamUpdate, a *adam, out adamOut[T]) {
	n, gd := u.Out.Len(), c.f(u.Grad)
	mc, vc, ms, vs := c.bytes(u.M.Data), c.bytes(u.V.Data), c.f(u.M.Scale), c.f(u.V.Scale)
	blocks := (n + gpu.QuantBlock - 1) / gpu.QuantBlock
	c.parallel(blocks, max(1, elemGrain/gpu.QuantBlock), func(lo, hi int) {
		nw := newNoise(u.Round.WeightParams())
		var mb, vb [gpu.QuantBlock]float32
		for b := lo; b < hi; b++ {
			i0, i1 := b*gpu.QuantBlock, min(n, (b+1)*gpu.QuantBlock)
			sm, sv := float32(ms[b]), float32(vs[b])
			for i := i0; i < i1; i++ {
				mi, vi := T(gpu.Dequantize8(mc[i], sm, true)), T(gpu.Dequantize8(vc[i], sv, false))
				out.store(i, moments(a, float64(gd[i])*a.clip, &mi, &vi), &nw)
				mb[i-i0], vb[i-i0] = float32(mi), float32(vi)
			}
			ms[b] = T(gpu.Quantize8(mb[:i1-i0], mc[i0:i1], true))
			vs[b] = T(gpu.Quantize8(vb[:i1-i0], vc[i0:i1], false))
		}
	})
}
