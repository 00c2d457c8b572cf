package cpu

// The lean optimizer ops on the CPU: the readable reference of the fused
// kernels in csrc/optimizer.cu and csrc/rounding.cu. Each element takes the
// arithmetic of AdamW / AdamDirection (optim.go) and is then rounded as
// StochasticRound would round it, so a fused call gives the bits of the
// staged composition (copy to float, update, round).

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

// checkLean checks the operands shared by the lean Adam ops.
func checkLean(op string, n int, g, m, v *gpu.Tensor, r gpu.AdamRounding) {
	checkLen(op+" g", g, n)
	checkLen(op+" m", m, n)
	checkLen(op+" v", v, n)
	check(g.Prec == gpu.Full, "%s: gradient %s must be Full", op, g)
	check(m.Prec == v.Prec, "%s: moments %s and %s differ in precision", op, m, v)
	if m.Prec == gpu.Low {
		checkRound(op+" moments", r.MomentParams(gpu.StreamExpAvg), n)
	}
}

// AdamWSR is AdamW with the lean stores (gpu.Backend.AdamWSR).
func (c *Backend[T]) AdamWSR(p, g, m, v, clip *gpu.Tensor, hp gpu.AdamParams, r gpu.AdamRounding) {
	n := p.Len()
	checkLean("AdamWSR", n, g, m, v, r)
	if r.Weights {
		checkRound("AdamWSR weights", r.WeightParams(), n)
	}
	a := c.adamConsts("AdamWSR", clip, hp)
	pd, gd, md, vd := c.f(p), c.f(g), c.f(m), c.f(v)
	lowM := m.Prec == gpu.Low
	c.parallel(n, elemGrain, func(lo, hi int) {
		nw, nm, nv := newNoise(r.WeightParams()), newNoise(r.MomentParams(gpu.StreamExpAvg)), newNoise(r.MomentParams(gpu.StreamExpAvgSq))
		for i := lo; i < hi; i++ {
			mi, vi := md[i], vd[i]
			dir := moments(&a, float64(gd[i])*a.clip, &mi, &vi)
			x := T(a.weight(float64(pd[i]), dir))
			if r.Weights {
				x = roundSR(x, nw.at(i))
			}
			if lowM {
				mi, vi = roundSR(mi, nm.at(i)), roundSR(vi, nv.at(i))
			}
			pd[i], md[i], vd[i] = x, mi, vi
		}
	})
}

// AdamDirectionSR is AdamDirection with the lean stores of the moments.
func (c *Backend[T]) AdamDirectionSR(dir, g, m, v, clip *gpu.Tensor, hp gpu.AdamParams, r gpu.AdamRounding) {
	n := dir.Len()
	checkLean("AdamDirectionSR", n, g, m, v, r)
	a := c.adamConsts("AdamDirectionSR", clip, hp)
	dd, gd, md, vd := c.f(dir), c.f(g), c.f(m), c.f(v)
	lowD, lowM := dir.Prec == gpu.Low, m.Prec == gpu.Low
	c.parallel(n, elemGrain, func(lo, hi int) {
		nm, nv := newNoise(r.MomentParams(gpu.StreamExpAvg)), newNoise(r.MomentParams(gpu.StreamExpAvgSq))
		for i := lo; i < hi; i++ {
			mi, vi := md[i], vd[i]
			dd[i] = T(direction(moments(&a, float64(gd[i])*a.clip, &mi, &vi), lowD))
			if lowM {
				mi, vi = roundSR(mi, nm.at(i)), roundSR(vi, nv.at(i))
			}
			md[i], vd[i] = mi, vi
		}
	})
}

// DecayAddSR: w = SR(fl(fl(decay*w) + d)), each operation rounded to T on
// its own (the explicit conversion keeps Go from fusing them).
func (c *Backend[T]) DecayAddSR(w, d *gpu.Tensor, decay float32, rp gpu.RoundParams) {
	n := w.Len()
	checkLen("DecayAddSR d", d, n)
	checkRound("DecayAddSR", rp, n)
	wd, ud, k := c.f(w), c.f(d), T(decay)
	c.parallel(n, elemGrain, func(lo, hi int) {
		nz := newNoise(rp)
		for i := lo; i < hi; i++ {
			wd[i] = roundSR(T(k*wd[i])+ud[i], nz.at(i))
		}
	})
}
