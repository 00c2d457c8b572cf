// Float32 attention on the packed GEMM kernel (CPUs with AVX2+FMA).
//
// The float64 reference in cpu_attention.go works one query row and one key
// at a time in float64, which was half of a tiny CPU step. Here each
// (sequence, head) is processed in blocks of attnBlock query rows: the scores
// of a block against the keys it may see (at most attnBlock x T floats per
// goroutine, never T x T for long sequences), the softmax with the vector
// exp, and the products with V, dO, K and Q as GEMMs. Each (sequence, head) unit is done by
// one goroutine with single-threaded GEMMs, so the result does not depend on
// the thread count.
package cpu

import "math"

// attnBlock is the number of query rows per score block.
const attnBlock = 64

// attnF32 reports whether the float32 GEMM path runs attention.
func (c *Backend[T]) attnF32() bool { return !c.is64 && c.sgemm.fn != nil }

func (c *Backend[T]) attentionF32(od, ld, qd, kd, vd []float32, B, T_, H, KV, D int) {
	G, scale := H/KV, float32(1/math.Sqrt(float64(D)))
	kern := c.sgemm
	c.parallel(B*H, 1, func(lo, hi int) {
		sBuf := getBuf(attnBlock * T_)
		defer sgemmPool.Put(sBuf)
		S := *sBuf
		for unit := lo; unit < hi; unit++ {
			b, h := unit/H, unit%H
			kvh := h / G
			kb, vb := kd[b*T_*KV*D+kvh*D:], vd[b*T_*KV*D+kvh*D:]
			for i0 := 0; i0 < T_; i0 += attnBlock {
				i1 := min(T_, i0+attnBlock)
				rows := i1 - i0
				qo := (b*T_+i0)*H*D + h*D
				// S (rows, i1) = scale q k^T; query i0+r sees keys 0..i0+r.
				sgemm(kern, 1, false, false, true, rows, i1, D, scale, qd[qo:], H*D, kb, KV*D, 0, S, i1)
				for r := 0; r < rows; r++ {
					t := i0 + r
					row := S[r*i1 : (r+1)*i1]
					m := float32(math.Inf(-1))
					for _, x := range row[:t+1] {
						m = max(m, x)
					}
					expSubF32(row[:t+1], m)
					var sum float64
					for _, e := range row[:t+1] {
						sum += float64(e)
					}
					inv := float32(1 / sum)
					for j := range row[:t+1] {
						row[j] *= inv
					}
					clear(row[t+1:])
					ld[(b*H+h)*T_+t] = float32(float64(m) + math.Log(sum))
				}
				// out rows = P v.
				sgemm(kern, 1, false, false, false, rows, D, i1, 1, S, i1, vb, KV*D, 0, od[qo:], H*D)
			}
		}
	})
}

// attentionBackwardF32: per (sequence, kv head), for every query head of the
// group and block of query rows, recompute P = exp(scale q k^T - lse), then
// dv += P^T dout, dP = dout v^T, dS = P (dP - D_i) scale, dq = dS k,
// dk += dS^T q, with dk and dv accumulated in place (this unit owns them).
func (c *Backend[T]) attentionBackwardF32(dqd, dkd, dvd, dod, qd, kd, vd, od, ld []float32, B, T_, H, KV, D int) {
	G, scale := H/KV, float32(1/math.Sqrt(float64(D)))
	kern := c.sgemm
	c.parallel(B*KV, 1, func(lo, hi int) {
		pBuf, dpBuf := getBuf(attnBlock*T_), getBuf(attnBlock*T_)
		defer sgemmPool.Put(pBuf)
		defer sgemmPool.Put(dpBuf)
		P, dP := *pBuf, *dpBuf
		for unit := lo; unit < hi; unit++ {
			b, kvh := unit/KV, unit%KV
			base := b*T_*KV*D + kvh*D
			kb, vb, dkb, dvb := kd[base:], vd[base:], dkd[base:], dvd[base:]
			for j := 0; j < T_; j++ {
				clear(dkb[j*KV*D:][:D])
				clear(dvb[j*KV*D:][:D])
			}
			for h := kvh * G; h < (kvh+1)*G; h++ {
				for i0 := 0; i0 < T_; i0 += attnBlock {
					i1 := min(T_, i0+attnBlock)
					rows := i1 - i0
					qo := (b*T_+i0)*H*D + h*D
					sgemm(kern, 1, false, false, true, rows, i1, D, scale, qd[qo:], H*D, kb, KV*D, 0, P, i1)
					sgemm(kern, 1, false, false, true, rows, i1, D, 1, dod[qo:], H*D, vb, KV*D, 0, dP, i1)
					for r := 0; r < rows; r++ {
						t := i0 + r
						ro := qo + r*H*D
						var di float64
						for d, x := range dod[ro:][:D] {
							di += float64(x) * float64(od[ro+d])
						}
						l, Di := ld[(b*H+h)*T_+t], float32(di)
						pr, dpr := P[r*i1:(r+1)*i1], dP[r*i1:(r+1)*i1]
						expSubF32(pr[:t+1], l)
						for j, p := range pr[:t+1] {
							dpr[j] = p * (dpr[j] - Di) * scale
						}
						clear(pr[t+1:])
						clear(dpr[t+1:])
					}
					sgemm(kern, 1, false, true, false, i1, D, rows, 1, P, i1, dod[qo:], H*D, 1, dvb, KV*D)
					sgemm(kern, 1, false, false, false, rows, D, i1, 1, dP, i1, kb, KV*D, 0, dqd[qo:], H*D)
					sgemm(kern, 1, false, true, false, i1, D, rows, 1, dP, i1, qd[qo:], H*D, 1, dkb, KV*D)
				}
			}
		}
	})
}
