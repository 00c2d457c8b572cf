// CPU RoPE and causal grouped-query attention, forward and backward.
//
// Attention never holds a T x T matrix: the forward works one query row at a
// time with a T-length score buffer and saves only the row's log-sum-exp; the
// backward recomputes the probabilities from lse, flash-attention style.
// This is the float64 reference (and the float32 path on CPUs without
// AVX2+FMA); float32 on AVX2 runs the blocked GEMM version in
// cpu_attention_f32.go.
package cpu

import "github.com/compact-llm/compact/internal/gpu"
import "math"

// RoPE rotates pairs (i, i+D/2) of every head by pos * inv_freq_i in place.
// inv_freq_i = 1/theta^(2i/D) is computed in float64 and rounded to T, and
// the angle pos*inv_freq is formed in T, which for float32 reproduces
// HuggingFace's float32 frequencies; cos and sin are then taken in float64.
func (c *Backend[T]) RoPE(x *gpu.Tensor, T_, heads, D int, theta float32, inverse bool) {
	check(D%2 == 0 && D > 0, "RoPE: head dim %d must be even", D)
	check(T_ > 0, "RoPE: T=%d", T_)
	W := heads * D
	check(W > 0 && x.Len()%W == 0, "RoPE: %s is not (N, %d*%d)", x, heads, D)
	N, half := x.Len()/W, D/2
	cos, sin := make([]T, T_*half), make([]T, T_*half)
	for i := 0; i < half; i++ {
		inv := T(1 / math.Pow(float64(theta), float64(2*i)/float64(D)))
		for p := 0; p < T_; p++ {
			ang := float64(T(p) * inv)
			cos[p*half+i], sin[p*half+i] = T(math.Cos(ang)), T(math.Sin(ang))
		}
	}
	sign := 1.0
	if inverse {
		sign = -1
	}
	xd := c.f(x)
	c.parallel(N, rowGrain(W), func(lo, hi int) {
		for n := lo; n < hi; n++ {
			cs, sn := cos[(n%T_)*half:][:half], sin[(n%T_)*half:][:half]
			for h := 0; h < heads; h++ {
				row := xd[n*W+h*D:][:D]
				for i := 0; i < half; i++ {
					x1, x2 := float64(row[i]), float64(row[i+half])
					co, si := float64(cs[i]), sign*float64(sn[i])
					row[i] = T(x1*co - x2*si)
					row[i+half] = T(x2*co + x1*si)
				}
			}
		}
	})
}

func checkAttn(op string, q, k, v, out *gpu.Tensor, B, T, H, KV, D int) {
	check(B > 0 && T > 0 && H > 0 && KV > 0 && D > 0 && H%KV == 0, "%s: bad shape B=%d T=%d H=%d KV=%d D=%d", op, B, T, H, KV, D)
	checkLen(op+" q", q, B*T*H*D)
	checkLen(op+" out", out, B*T*H*D)
	checkLen(op+" k", k, B*T*KV*D)
	checkLen(op+" v", v, B*T*KV*D)
}

func dot64[T float32 | float64](a, b []T) float64 {
	var s float64
	for i, x := range a {
		s += float64(x) * float64(b[i])
	}
	return s
}

// Attention: causal softmax(q k^T / sqrt(D)) v per (b, query head), with
// query head h reading kv head h/(H/KV). Rows (b, h, t) are independent and
// split across goroutines.
func (c *Backend[T]) Attention(out, lse, q, k, v *gpu.Tensor, B, T_, H, KV, D int) {
	checkAttn("Attention", q, k, v, out, B, T_, H, KV, D)
	checkLen("Attention lse", lse, B*H*T_)
	od, ld, qd, kd, vd := c.f(out), c.f(lse), c.f(q), c.f(k), c.f(v)
	if c.attnF32() {
		f := func(x []T) []float32 { return any(x).([]float32) }
		c.attentionF32(f(od), f(ld), f(qd), f(kd), f(vd), B, T_, H, KV, D)
		return
	}
	G, scale := H/KV, 1/math.Sqrt(float64(D))
	c.parallel(B*H*T_, max(1, elemGrain/(T_*D)), func(lo, hi int) {
		s, acc := make([]float64, T_), make([]float64, D)
		for row := lo; row < hi; row++ {
			t, bh := row%T_, row/T_
			b, h := bh/H, bh%H
			kvh := h / G
			qr := qd[(b*T_+t)*H*D+h*D:][:D]
			m := math.Inf(-1)
			for j := 0; j <= t; j++ {
				s[j] = scale * dot64(qr, kd[(b*T_+j)*KV*D+kvh*D:][:D])
				m = max(m, s[j])
			}
			clear(acc)
			var sum float64
			for j := 0; j <= t; j++ {
				e := math.Exp(s[j] - m)
				sum += e
				vr := vd[(b*T_+j)*KV*D+kvh*D:][:D]
				for d, x := range vr {
					acc[d] += e * float64(x)
				}
			}
			or := od[(b*T_+t)*H*D+h*D:][:D]
			for d := range or {
				or[d] = T(acc[d] / sum)
			}
			ld[row] = T(m + math.Log(sum))
		}
	})
}

// AttentionBackward overwrites dq, dk, dv. Work is split over (b, kv head) so
// that the query heads sharing one kv head, which all add into the same dk and
// dv rows, stay in one goroutine. Per query row i of head h:
//
//	D_i = dout_i . out_i, p_ij = exp(s_ij - lse_i), dv_j += p_ij dout_i,
//	ds_ij = p_ij (dout_i . v_j - D_i), dq_i += scale ds_ij k_j,
//	dk_j += scale ds_ij q_i.
func (c *Backend[T]) AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *gpu.Tensor, B, T_, H, KV, D int) {
	checkAttn("AttentionBackward", q, k, v, out, B, T_, H, KV, D)
	checkAttn("AttentionBackward grads", dq, dk, dv, dout, B, T_, H, KV, D)
	checkLen("AttentionBackward lse", lse, B*H*T_)
	dqd, dkd, dvd, dod := c.f(dq), c.f(dk), c.f(dv), c.f(dout)
	qd, kd, vd, od, ld := c.f(q), c.f(k), c.f(v), c.f(out), c.f(lse)
	if c.attnF32() {
		f := func(x []T) []float32 { return any(x).([]float32) }
		c.attentionBackwardF32(f(dqd), f(dkd), f(dvd), f(dod), f(qd), f(kd), f(vd), f(od), f(ld), B, T_, H, KV, D)
		return
	}
	G, scale := H/KV, 1/math.Sqrt(float64(D))
	c.parallel(B*KV, 1, func(lo, hi int) {
		dkAcc, dvAcc, dqAcc := make([]float64, T_*D), make([]float64, T_*D), make([]float64, D)
		for unit := lo; unit < hi; unit++ {
			b, kvh := unit/KV, unit%KV
			clear(dkAcc)
			clear(dvAcc)
			for h := kvh * G; h < (kvh+1)*G; h++ {
				for i := 0; i < T_; i++ {
					qo := (b*T_+i)*H*D + h*D
					qr, dor := qd[qo:][:D], dod[qo:][:D]
					Di := dot64(dor, od[qo:][:D])
					l := float64(ld[(b*H+h)*T_+i])
					clear(dqAcc)
					for j := 0; j <= i; j++ {
						ko := (b*T_+j)*KV*D + kvh*D
						kr, vr := kd[ko:][:D], vd[ko:][:D]
						p := math.Exp(scale*dot64(qr, kr) - l)
						ds := p * (dot64(dor, vr) - Di) * scale
						dkj, dvj := dkAcc[j*D:][:D], dvAcc[j*D:][:D]
						for d := 0; d < D; d++ {
							dvj[d] += p * float64(dor[d])
							dqAcc[d] += ds * float64(kr[d])
							dkj[d] += ds * float64(qr[d])
						}
					}
					dqr := dqd[qo:][:D]
					for d, x := range dqAcc {
						dqr[d] = T(x)
					}
				}
			}
			for j := 0; j < T_; j++ {
				ko := (b*T_+j)*KV*D + kvh*D
				dkr, dvr := dkd[ko:][:D], dvd[ko:][:D]
				for d := 0; d < D; d++ {
					dkr[d], dvr[d] = T(dkAcc[j*D+d]), T(dvAcc[j*D+d])
				}
			}
		}
	})
}
