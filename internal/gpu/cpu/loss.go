// CPU SwiGLU activation (forward and backward) and the fused softmax
// cross-entropy.
package cpu

import "github.com/compact-llm/compact/internal/gpu"
import "math"

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// SwiGLU: out = silu(gate) * up, silu(g) = g sigmoid(g). Float32 on AVX2+FMA
// runs the vector kernel of cpu_vec_amd64.s.
func (c *Backend[T]) SwiGLU(out, gate, up *gpu.Tensor) {
	n := out.Len()
	checkLen("SwiGLU gate", gate, n)
	checkLen("SwiGLU up", up, n)
	o, g, u := c.f(out), c.f(gate), c.f(up)
	if !c.is64 && hasVecF32 {
		f := func(x []T) []float32 { return any(x).([]float32) }
		c.parallel(n, elemGrain, func(lo, hi int) { swigluF32(f(o[lo:hi]), f(g[lo:hi]), f(u[lo:hi])) })
		return
	}
	c.parallel(n, elemGrain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			x := float64(g[i])
			o[i] = T(x * sigmoid(x) * float64(u[i]))
		}
	})
}

// SwiGLUBackward: dup = dout silu(g), dgate = dout u sig(g) (1 + g (1 - sig(g))).
// Each element's inputs are read before its outputs are written, so dgate and
// dup may alias gate and up.
func (c *Backend[T]) SwiGLUBackward(dgate, dup, dout, gate, up *gpu.Tensor) {
	n := dout.Len()
	checkLen("SwiGLUBackward dgate", dgate, n)
	checkLen("SwiGLUBackward dup", dup, n)
	checkLen("SwiGLUBackward gate", gate, n)
	checkLen("SwiGLUBackward up", up, n)
	dg, du, do, g, u := c.f(dgate), c.f(dup), c.f(dout), c.f(gate), c.f(up)
	if !c.is64 && hasVecF32 {
		f := func(x []T) []float32 { return any(x).([]float32) }
		c.parallel(n, elemGrain, func(lo, hi int) {
			swigluBackwardF32(f(dg[lo:hi]), f(du[lo:hi]), f(do[lo:hi]), f(g[lo:hi]), f(u[lo:hi]))
		})
		return
	}
	c.parallel(n, elemGrain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			x, y, d := float64(g[i]), float64(u[i]), float64(do[i])
			s := sigmoid(x)
			dg[i] = T(d * y * s * (1 + x*(1-s)))
			du[i] = T(d * x * s)
		}
	})
}

// CrossEntropy on logits (n, V) in place, rows split across goroutines. The
// row maximum is subtracted before exponentiating so that large logits do not
// overflow.
func (c *Backend[T]) CrossEntropy(losses, logits, targets *gpu.Tensor, grad bool, gradScale float32) {
	V := logits.Dim(-1)
	n := logits.Len() / max(1, V)
	checkLen("CrossEntropy losses", losses, n)
	checkLen("CrossEntropy targets", targets, n)
	ls, lg, tg := c.f(losses), c.f(logits), c.ints(targets)
	for i, y := range tg {
		check(int(y) < V, "CrossEntropy: target %d at row %d outside vocabulary of %d", y, i, V)
	}
	gs := float64(gradScale)
	if !c.is64 && hasVecF32 {
		f := func(x []T) []float32 { return any(x).([]float32) }
		crossEntropyF32(c, f(ls), f(lg), tg, V, grad, float32(gradScale))
		return
	}
	c.parallel(n, rowGrain(V), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row, y := lg[i*V:][:V], int(tg[i])
			if y < 0 {
				ls[i] = 0
				if grad {
					clear(row)
				}
				continue
			}
			m := math.Inf(-1)
			for _, x := range row {
				m = max(m, float64(x))
			}
			var sum float64
			for _, x := range row {
				sum += math.Exp(float64(x) - m)
			}
			lse := m + math.Log(sum)
			ls[i] = T(lse - float64(row[y]))
			if grad {
				for j, x := range row {
					p := math.Exp(float64(x) - lse)
					if j == y {
						p--
					}
					row[j] = T(gs * p)
				}
			}
		}
	})
}

// crossEntropyF32 is CrossEntropy's float32 path with the vector exp: the row
// sum in float64 over exp(x - max) computed in a scratch row, then, for the
// gradient, exp(x - lse) in place.
func crossEntropyF32[T float32 | float64](c *Backend[T], ls, lg []float32, tg []int32, V int, grad bool, gs float32) {
	c.parallel(len(tg), rowGrain(V), func(lo, hi int) {
		tmp := make([]float32, V)
		for i := lo; i < hi; i++ {
			row, y := lg[i*V:][:V], int(tg[i])
			if y < 0 {
				ls[i] = 0
				if grad {
					clear(row)
				}
				continue
			}
			m := float32(math.Inf(-1))
			for _, x := range row {
				m = max(m, x)
			}
			copy(tmp, row)
			expSubF32(tmp, m)
			var sum float64
			for _, e := range tmp {
				sum += float64(e)
			}
			lse := float64(m) + math.Log(sum)
			ls[i] = float32(lse - float64(row[y]))
			if grad {
				expSubF32(row, float32(lse))
				for j, p := range row {
					if j == y {
						p--
					}
					row[j] = gs * p
				}
			}
		}
	})
}
