// CPU GEMM: row-major matrix products. Float32 goes through our own packed
// SIMD kernel (cpu_sgemm.go) where the CPU has AVX2+FMA; float64 (the
// gradient-check reference) and float32 elsewhere through gonum's pure-Go
// Dgemm/Sgemm, which split C into fixed 64x64 blocks each computed along K in
// order. Neither depends on the thread count.
package cpu

import (
	"github.com/compact-llm/compact/internal/gpu"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Gemm computes c (M,N) = alpha op(a) op(b) + beta c. Leading dimensions of a
// tensor are flattened, so a (B,T,C) activation is the (B*T, C) matrix.
func (c *Backend[T]) Gemm(cm, a, b *gpu.Tensor, transA, transB bool, alpha, beta float32) {
	N := cm.Dim(-1)
	M := cm.Len() / max(1, N)
	var K, lda, ldb int
	if transA { // a stored (K, M)
		check(a.Dim(-1) == M, "Gemm: a %v transposed does not give %d rows (c %v)", a.Shape, M, cm.Shape)
		K, lda = a.Len()/max(1, M), M
		check(a.Len() == K*M, "Gemm: a %v transposed does not give %d rows (c %v)", a.Shape, M, cm.Shape)
	} else { // a stored (M, K)
		K, lda = a.Dim(-1), a.Dim(-1)
		check(a.Len() == M*K, "Gemm: a %v does not have %d rows (c %v)", a.Shape, M, cm.Shape)
	}
	if transB { // b stored (N, K)
		check(b.Len() == N*K && (K == 0 || b.Dim(-1) == K), "Gemm: b %v transposed is not %dx%d", b.Shape, K, N)
		ldb = K
	} else { // b stored (K, N)
		check(b.Len() == K*N && b.Dim(-1) == N, "Gemm: b %v is not %dx%d", b.Shape, K, N)
		ldb = N
	}
	if M == 0 || N == 0 {
		return
	}
	if cd, ok := any(c.f(cm)).([]float32); ok && c.sgemm.fn != nil {
		sgemm(c.sgemm, c.threads, c.splitAll, transA, transB, M, N, K,
			alpha, any(c.f(a)).([]float32), lda, any(c.f(b)).([]float32), ldb, beta, cd, N)
		return
	}
	ta, tb := blas.NoTrans, blas.NoTrans
	if transA {
		ta = blas.Trans
	}
	if transB {
		tb = blas.Trans
	}
	lda, ldb = max(1, lda), max(1, ldb)
	var impl gonum.Implementation
	switch cd := any(c.f(cm)).(type) {
	case []float32:
		impl.Sgemm(ta, tb, M, N, K, alpha, any(c.f(a)).([]float32), lda, any(c.f(b)).([]float32), ldb, beta, cd, N)
	case []float64:
		impl.Dgemm(ta, tb, M, N, K, float64(alpha), any(c.f(a)).([]float64), lda, any(c.f(b)).([]float64), ldb, float64(beta), cd, N)
	}
}
