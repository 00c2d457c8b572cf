// CPU token embedding and RMSNorm, forward and backward.
//
// Weight gradients (dwte, dw) are reductions over tokens; they are split over
// the output columns so that each element is summed by one goroutine in token
// order, which keeps them deterministic without atomics.
package cpu

import "github.com/compact-llm/compact/internal/gpu"
import "math"

func (c *Backend[T]) checkTokens(op string, tok []int32, V int) {
	for n, id := range tok {
		check(id >= 0 && int(id) < V, "%s: token %d at position %d outside vocabulary of %d", op, id, n, V)
	}
}

// Embedding: out (N,C) = wte[tokens[n], :].
func (c *Backend[T]) Embedding(out, wte, tokens *gpu.Tensor) {
	C := wte.Dim(-1)
	V := wte.Len() / max(1, C)
	tok := c.ints(tokens)
	checkLen("Embedding", out, len(tok)*C)
	c.checkTokens("Embedding", tok, V)
	o, w := c.f(out), c.f(wte)
	c.parallel(len(tok), rowGrain(C), func(lo, hi int) {
		for n := lo; n < hi; n++ {
			id := int(tok[n])
			copy(o[n*C:(n+1)*C], w[id*C:(id+1)*C])
		}
	})
}

// EmbeddingBackward: dwte[tokens[n], :] += dout[n, :], split over columns,
// tokens in order.
func (c *Backend[T]) EmbeddingBackward(dwte, dout, tokens *gpu.Tensor) {
	C := dwte.Dim(-1)
	V := dwte.Len() / max(1, C)
	tok := c.ints(tokens)
	checkLen("EmbeddingBackward", dout, len(tok)*C)
	c.checkTokens("EmbeddingBackward", tok, V)
	dw, d := c.f(dwte), c.f(dout)
	c.parallel(C, max(1, elemGrain/max(1, len(tok))), func(lo, hi int) {
		for n, id := range tok {
			dst := dw[int(id)*C+lo : int(id)*C+hi]
			src := d[n*C+lo : n*C+hi]
			for i := range dst {
				dst[i] += src[i]
			}
		}
	})
}

// RMSNorm: out = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps).
func (c *Backend[T]) RMSNorm(out, rstd, x, w *gpu.Tensor, eps float32) {
	C := w.Len()
	N := x.Len() / max(1, C)
	checkLen("RMSNorm", x, N*C)
	checkLen("RMSNorm", out, N*C)
	var rs []T
	if rstd != nil {
		checkLen("RMSNorm rstd", rstd, N)
		rs = c.f(rstd)
	}
	o, xd, wd := c.f(out), c.f(x), c.f(w)
	c.parallel(N, rowGrain(C), func(lo, hi int) {
		for n := lo; n < hi; n++ {
			xr, or := xd[n*C:(n+1)*C], o[n*C:(n+1)*C]
			var ss float64
			for _, v := range xr {
				ss += float64(v) * float64(v)
			}
			r := 1 / math.Sqrt(ss/float64(C)+float64(eps))
			for i, v := range xr {
				or[i] = T(float64(v) * r * float64(wd[i]))
			}
			if rs != nil {
				rs[n] = T(r)
			}
		}
	})
}

// RMSNormBackward accumulates dx and dw. With y = x r w and
// r = (mean x^2 + eps)^-1/2, dr/dx_c = -r^3 x_c / C, so
// dx_c = r (dout_c w_c) - x_c r^3 / C * sum_j dout_j w_j x_j
// and dw_c = sum_n dout[n,c] x[n,c] r[n].
// rstd must be the forward's saved rstd (it holds eps).
func (c *Backend[T]) RMSNormBackward(dx, dw, dout, x, w, rstd *gpu.Tensor) {
	check(rstd != nil, "RMSNormBackward: rstd is required (the forward's eps is not known here)")
	C := w.Len()
	N := x.Len() / max(1, C)
	checkLen("RMSNormBackward x", x, N*C)
	checkLen("RMSNormBackward dx", dx, N*C)
	checkLen("RMSNormBackward dout", dout, N*C)
	checkLen("RMSNormBackward dw", dw, C)
	checkLen("RMSNormBackward rstd", rstd, N)
	dxd, dwd, dod, xd, wd, rs := c.f(dx), c.f(dw), c.f(dout), c.f(x), c.f(w), c.f(rstd)
	c.parallel(N, rowGrain(C), func(lo, hi int) {
		for n := lo; n < hi; n++ {
			xr, dr, gr := xd[n*C:(n+1)*C], dod[n*C:(n+1)*C], dxd[n*C:(n+1)*C]
			r := float64(rs[n])
			var dot float64
			for i, v := range xr {
				dot += float64(dr[i]) * float64(wd[i]) * float64(v)
			}
			k := r * r * r * dot / float64(C)
			for i, v := range xr {
				gr[i] += T(r*float64(dr[i])*float64(wd[i]) - float64(v)*k)
			}
		}
	})
	c.parallel(C, max(1, elemGrain/max(1, N)), func(lo, hi int) {
		acc := make([]float64, hi-lo)
		for n := 0; n < N; n++ {
			r := float64(rs[n])
			xr, dr := xd[n*C+lo:n*C+hi], dod[n*C+lo:n*C+hi]
			for i := range acc {
				acc[i] += float64(dr[i]) * float64(xr[i]) * r
			}
		}
		for i, a := range acc {
			dwd[lo+i] += T(a)
		}
	})
}
