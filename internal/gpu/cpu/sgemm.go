// Float32 GEMM of the CPU backend: packed panels, cache blocking and a
// register-tiled AVX2+FMA micro-kernel in assembly. CPUs without AVX2+FMA
// (and other architectures) use gonum's Sgemm, as before (cpu_gemm.go).
//
// C = alpha op(A) op(B) + beta C is computed as follows. op(B) is packed once
// into NR-column panels, zero-padded at the right edge, per block of kc
// values of K. The M rows are split into MR-row panels; each goroutine owns a
// contiguous range of them, reads its A panels in place (packing only a
// partial last one) and runs the micro-kernel on every (A panel, B panel)
// pair, accumulating an MR x NR tile in registers. Between K blocks the raw
// tile waits in a per-goroutine buffer; the last K block writes it to C with
// alpha and beta.
//
// Determinism: every element of C is one FMA chain over k = 0..K-1 in order
// (the kernel reloads the tile it stored after the previous K block, so the
// blocking does not reorder the sum), then alpha and beta, all in the same
// instructions for edge tiles as for full ones. Which goroutine computes a
// tile, and how many there are, changes nothing.
package cpu

import "sync"

// sgemmKernel computes one MR x NR tile over k >= 1 values of K: element
// (i, k) of the A panel is a[i*rs + k*cs] (the matrix itself for full panels,
// which saves packing it, or an MR-interleaved copy, rs=1 cs=MR, for the
// last, partial one), b is NR-interleaved (b[k*NR+j]). The sums start
// from the raw tile acc (MR x NR, row-major) or from zero when acc is nil.
// Without final the raw sums go to c (row stride ldc); with final c becomes
// alpha*sum + beta*c, the two products rounded separately, and c is not read
// when beta == 0.
type sgemmKernel struct {
	name   string
	mr, nr int
	fn     func(k int, a []float32, rs, cs int, b, acc, c []float32, ldc int, alpha, beta float32, final bool)
}

// Blocking: kc values of K per packed block (an A panel is then 6 KiB, in L1;
// the B block kc x N stays in L2 for tiny's widths), mcPanels A panels and
// ncPanels B panels per pass.
const (
	sgemmKC       = 256
	sgemmMCPanels = 8
	sgemmNCPanels = 64
	// sgemmGrain is the least number of multiply-adds worth a goroutine.
	sgemmGrain = 1 << 17
)

// sgemmPool recycles packing and tile buffers across calls; training makes
// the same GEMMs every step.
var sgemmPool sync.Pool

func getBuf(n int) *[]float32 {
	if p, ok := sgemmPool.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	s := make([]float32, n)
	return &s
}

// sgemm computes C (M x N, row stride ldc) = alpha op(A) op(B) + beta C with
// op(A) M x K (A stored K x M when transA, row stride lda) and op(B) K x N
// (B stored N x K when transB, row stride ldb). beta == 0 ignores C's
// contents. threads bounds the goroutines; splitAll ignores the grain.
func sgemm(kern sgemmKernel, threads int, splitAll bool, transA, transB bool, M, N, K int,
	alpha float32, A []float32, lda int, B []float32, ldb int, beta float32, C []float32, ldc int) {
	if M == 0 || N == 0 {
		return
	}
	if K == 0 {
		for i := 0; i < M; i++ {
			row := C[i*ldc:][:N]
			for j := range row {
				if beta == 0 {
					row[j] = 0
				} else {
					row[j] *= beta
				}
			}
		}
		return
	}
	MR, NR := kern.mr, kern.nr
	mP, nP := (M+MR-1)/MR, (N+NR-1)/NR
	Npad := nP * NR

	// Pack op(B): block of K values starting at k0 holds panel j at
	// k0*Npad + j*kl*NR, element (k, jj) at (k-k0)*NR + jj.
	bpBuf := getBuf(K * Npad)
	defer sgemmPool.Put(bpBuf)
	bp := *bpBuf
	run := func(n, grain int, fn func(lo, hi int)) {
		if splitAll {
			grain = 1
		}
		parallelN(threads, n, grain, fn)
	}
	run(nP, max(1, sgemmGrain/(NR*K*8)), func(lo, hi int) {
		for k0 := 0; k0 < K; k0 += sgemmKC {
			kl := min(sgemmKC, K-k0)
			for j := lo; j < hi; j++ {
				packB(bp[k0*Npad+j*kl*NR:][:kl*NR], B, ldb, transB, k0, kl, j*NR, min(NR, N-j*NR), NR)
			}
		}
	})

	// Each goroutine: M panels [lo, hi) in blocks of sgemmMCPanels, N in
	// chunks of sgemmNCPanels panels, all K blocks. Full tiles are written
	// straight into C by the last K block; edge tiles go through a scratch
	// tile so that they see exactly the same instructions.
	run(mP, max(1, sgemmGrain/(MR*Npad*K)), func(lo, hi int) {
		apBuf := getBuf(MR * min(K, sgemmKC))
		tileBuf := getBuf((sgemmMCPanels*min(nP, sgemmNCPanels) + 1) * MR * NR)
		defer sgemmPool.Put(apBuf)
		defer sgemmPool.Put(tileBuf)
		ap, tiles := *apBuf, *tileBuf
		edge := tiles[len(tiles)-MR*NR:]
		for p0 := lo; p0 < hi; p0 += sgemmMCPanels {
			p1 := min(hi, p0+sgemmMCPanels)
			for j0 := 0; j0 < nP; j0 += sgemmNCPanels {
				j1 := min(nP, j0+sgemmNCPanels)
				for k0 := 0; k0 < K; k0 += sgemmKC {
					kl := min(sgemmKC, K-k0)
					last := k0+kl == K
					for ip := p0; ip < p1; ip++ {
						rows := min(MR, M-ip*MR)
						// A in place (row stride lda, or 1 when transposed),
						// except a partial last panel, which is zero-padded.
						var a []float32
						var rs, cs int
						switch {
						case rows < MR:
							a, rs, cs = ap[:kl*MR], 1, MR
							packA(a, A, lda, transA, k0, kl, ip*MR, rows, MR)
						case transA:
							a, rs, cs = A[k0*lda+ip*MR:], 1, lda
						default:
							a, rs, cs = A[ip*MR*lda+k0:], lda, 1
						}
						for j := j0; j < j1; j++ {
							b := bp[k0*Npad+j*kl*NR:][:kl*NR]
							t := tiles[((ip-p0)*(j1-j0)+j-j0)*MR*NR:][:MR*NR]
							var acc []float32
							if k0 > 0 {
								acc = t
							}
							if !last {
								kern.fn(kl, a, rs, cs, b, acc, t, NR, 1, 0, false)
								continue
							}
							cols := min(NR, N-j*NR)
							c := C[ip*MR*ldc+j*NR:]
							if rows == MR && cols == NR {
								kern.fn(kl, a, rs, cs, b, acc, c, ldc, alpha, beta, true)
								continue
							}
							clear(edge)
							if beta != 0 {
								for i := 0; i < rows; i++ {
									copy(edge[i*NR:][:cols], c[i*ldc:][:cols])
								}
							}
							kern.fn(kl, a, rs, cs, b, acc, edge, NR, alpha, beta, true)
							for i := 0; i < rows; i++ {
								copy(c[i*ldc:][:cols], edge[i*NR:][:cols])
							}
						}
					}
				}
			}
		}
	})
}

// packA writes rows [i0, i0+rows) of op(A), columns [k0, k0+kl), as
// dst[k*MR+i], zero-filling rows past the edge.
func packA(dst, A []float32, lda int, transA bool, k0, kl, i0, rows, MR int) {
	if rows < MR {
		clear(dst)
	}
	if transA { // op(A)[i][k] = A[k*lda+i]: MR contiguous values per k
		for k := 0; k < kl; k++ {
			copy(dst[k*MR:][:rows], A[(k0+k)*lda+i0:][:rows])
		}
		return
	}
	for i := 0; i < rows; i++ {
		src := A[(i0+i)*lda+k0:][:kl]
		for k, v := range src {
			dst[k*MR+i] = v
		}
	}
}

// packB writes columns [j0, j0+cols) of op(B), rows [k0, k0+kl), as
// dst[k*NR+j], zero-filling columns past the edge.
func packB(dst, B []float32, ldb int, transB bool, k0, kl, j0, cols, NR int) {
	if cols < NR {
		clear(dst)
	}
	if !transB { // op(B)[k][j] = B[k*ldb+j]
		for k := 0; k < kl; k++ {
			copy(dst[k*NR:][:cols], B[(k0+k)*ldb+j0:][:cols])
		}
		return
	}
	for j := 0; j < cols; j++ { // op(B)[k][j] = B[j*ldb+k]
		src := B[(j0+j)*ldb+k0:][:kl]
		for k, v := range src {
			dst[k*NR+j] = v
		}
	}
}
