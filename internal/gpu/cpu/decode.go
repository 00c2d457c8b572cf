// CPU decoding ops: RoPE at an explicit position and attention of one new
// query row per sequence against a KV cache (see Decoder).
package cpu

import "github.com/compact-llm/compact/internal/gpu"
import "math"

// RoPEAt rotates every row of x as position pos, with the same frequencies,
// rounding and angle formation as RoPE, so that a cached decode reproduces
// a full forward exactly.
func (c *Backend[T]) RoPEAt(x *gpu.Tensor, pos, heads, D int, theta float32) {
	check(D%2 == 0 && D > 0, "RoPEAt: head dim %d must be even", D)
	check(pos >= 0, "RoPEAt: position %d", pos)
	W := heads * D
	check(W > 0 && x.Len()%W == 0, "RoPEAt: %s is not (n, %d*%d)", x, heads, D)
	N, half := x.Len()/W, D/2
	cos, sin := make([]float64, half), make([]float64, half)
	for i := 0; i < half; i++ {
		inv := T(1 / math.Pow(float64(theta), float64(2*i)/float64(D)))
		ang := float64(T(pos) * inv)
		cos[i], sin[i] = float64(T(math.Cos(ang))), float64(T(math.Sin(ang)))
	}
	xd := c.f(x)
	for n := 0; n < N; n++ {
		for h := 0; h < heads; h++ {
			row := xd[n*W+h*D:][:D]
			for i := 0; i < half; i++ {
				x1, x2 := float64(row[i]), float64(row[i+half])
				row[i] = T(x1*cos[i] - x2*sin[i])
				row[i+half] = T(x2*cos[i] + x1*sin[i])
			}
		}
	}
}

// AttentionDecode: for each sequence b and query head h, softmax over cached
// positions j < t of q k_j / sqrt(D), times v_j; cache row j*B + b.
func (c *Backend[T]) AttentionDecode(out, q, kc, vc *gpu.Tensor, B, t, H, KV, D int) {
	check(B > 0 && t > 0 && H > 0 && KV > 0 && D > 0 && H%KV == 0, "AttentionDecode: bad shape B=%d t=%d H=%d KV=%d D=%d", B, t, H, KV, D)
	checkLen("AttentionDecode q", q, B*H*D)
	checkLen("AttentionDecode out", out, B*H*D)
	check(kc.Len() >= t*B*KV*D && vc.Len() == kc.Len(), "AttentionDecode: caches %s %s hold fewer than %d positions", kc, vc, t)
	od, qd, kd, vd := c.f(out), c.f(q), c.f(kc), c.f(vc)
	G, scale := H/KV, 1/math.Sqrt(float64(D))
	c.parallel(B*H, max(1, elemGrain/(t*D)), func(lo, hi int) {
		s, acc := make([]float64, t), make([]float64, D)
		for bh := lo; bh < hi; bh++ {
			b, h := bh/H, bh%H
			kvh := h / G
			qr := qd[b*H*D+h*D:][:D]
			m := math.Inf(-1)
			for j := 0; j < t; j++ {
				s[j] = scale * dot64(qr, kd[(j*B+b)*KV*D+kvh*D:][:D])
				m = max(m, s[j])
			}
			clear(acc)
			var sum float64
			for j := 0; j < t; j++ {
				e := math.Exp(s[j] - m)
				sum += e
				vr := vd[(j*B+b)*KV*D+kvh*D:][:D]
				for d, x := range vr {
					acc[d] += e * float64(x)
				}
			}
			or := od[b*H*D+h*D:][:D]
			for d := range or {
				or[d] = T(acc[d] / sum)
			}
		}
	})
}
