package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// sgemmCase is one awkward GEMM: sizes around the kernel's 6x16 tile and the
// 256-deep K block, with strides wider than the matrices.
type sgemmCase struct {
	M, N, K     int
	tA, tB      bool
	alpha, beta float32
}

func sgemmCases() []sgemmCase {
	var cs []sgemmCase
	sizes := [][3]int{{1, 1, 1}, {1, 1, 300}, {1, 17, 3}, {5, 1, 7}, {6, 16, 1}, {7, 17, 5},
		{13, 33, 257}, {12, 32, 256}, {31, 15, 513}, {50, 100, 9}, {97, 1025, 3}, {64, 40, 600}}
	ab := [][2]float32{{1, 0}, {0.5, 1}, {-1.25, 0.75}, {2, -1}}
	for i, s := range sizes {
		for t := 0; t < 4; t++ {
			a := ab[(i+t)%len(ab)]
			cs = append(cs, sgemmCase{s[0], s[1], s[2], t&1 == 1, t&2 == 2, a[0], a[1]})
		}
	}
	return cs
}

// run computes the case with kern on threads goroutines. A, B and C live in
// larger arrays (leading dimension + 3) so that strides are exercised and
// writes outside C are caught.
func (tc sgemmCase) run(kern sgemmKernel, threads int, seed uint64) (got, want, bound []float64, guardOK bool) {
	r := rand.New(rand.NewPCG(seed, 9))
	aRows, aCols := tc.M, tc.K
	if tc.tA {
		aRows, aCols = tc.K, tc.M
	}
	bRows, bCols := tc.K, tc.N
	if tc.tB {
		bRows, bCols = tc.N, tc.K
	}
	lda, ldb, ldc := aCols+3, bCols+3, tc.N+3
	fill := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		return x
	}
	A, B, C := fill(aRows*lda), fill(bRows*ldb), fill(tc.M*ldc)
	C0 := append([]float32(nil), C...)
	sgemm(kern, threads, true, tc.tA, tc.tB, tc.M, tc.N, tc.K, tc.alpha, A, lda, B, ldb, tc.beta, C, ldc)
	guardOK = true
	for i := 0; i < tc.M; i++ {
		for j := 0; j < ldc; j++ {
			if j >= tc.N && C[i*ldc+j] != C0[i*ldc+j] {
				guardOK = false
			}
			if j >= tc.N {
				continue
			}
			var s, abs float64
			for k := 0; k < tc.K; k++ {
				var av, bv float64
				if tc.tA {
					av = float64(A[k*lda+i])
				} else {
					av = float64(A[i*lda+k])
				}
				if tc.tB {
					bv = float64(B[j*ldb+k])
				} else {
					bv = float64(B[k*ldb+j])
				}
				s += av * bv
				abs += math.Abs(av * bv)
			}
			al, be, c0 := float64(tc.alpha), float64(tc.beta), float64(C0[i*ldc+j])
			got = append(got, float64(C[i*ldc+j]))
			want = append(want, al*s+be*c0)
			// float32 rounding of a K-term sum, alpha, beta and the final add.
			eps := math.Ldexp(1, -24)
			bound = append(bound, float64(tc.K+3)*eps*(math.Abs(al)*abs+math.Abs(be*c0))+1e-30)
		}
	}
	return got, want, bound, guardOK
}

func TestSgemmMatchesFloat64Reference(t *testing.T) {
	for _, kern := range sgemmKernels() {
		for ci, tc := range sgemmCases() {
			name := fmt.Sprintf("%s %dx%dx%d tA=%v tB=%v alpha=%g beta=%g", kern.name, tc.M, tc.N, tc.K, tc.tA, tc.tB, tc.alpha, tc.beta)
			got, want, bound, guardOK := tc.run(kern, 2, uint64(ci))
			if !guardOK {
				t.Errorf("%s: wrote outside C", name)
			}
			for i := range got {
				if !(math.Abs(got[i]-want[i]) <= bound[i]) {
					t.Errorf("%s: element %d = %v, float64 reference %v (bound %.3g)", name, i, got[i], want[i], bound[i])
					break
				}
			}
		}
	}
}

// Every element is one fixed FMA chain, so the thread count (and the split
// that comes with it) must not change a single bit.
func TestSgemmThreadCountBitIdentical(t *testing.T) {
	for _, kern := range sgemmKernels() {
		for ci, tc := range sgemmCases() {
			first, _, _, _ := tc.run(kern, 1, uint64(ci))
			for _, threads := range []int{2, 3, 7} {
				again, _, _, _ := tc.run(kern, threads, uint64(ci))
				for i := range first {
					if math.Float64bits(first[i]) != math.Float64bits(again[i]) {
						t.Errorf("%s %+v: threads=%d element %d = %v, threads=1 gave %v", kern.name, tc, threads, i, again[i], first[i])
						break
					}
				}
			}
		}
	}
}

// beta = 0 must ignore whatever C held, NaN included.
func TestSgemmBetaZeroIgnoresNaN(t *testing.T) {
	for _, kern := range sgemmKernels() {
		M, N, K := 7, 19, 5
		A, B, C := make([]float32, M*K), make([]float32, K*N), make([]float32, M*N)
		for i := range A {
			A[i] = float32(i%5) - 2
		}
		for i := range B {
			B[i] = float32(i%3) - 1
		}
		for i := range C {
			C[i] = float32(math.NaN())
		}
		sgemm(kern, 2, false, false, false, M, N, K, 1, A, K, B, N, 0, C, N)
		for i, v := range C {
			if v != v {
				t.Fatalf("%s: C[%d] is NaN after beta=0", kern.name, i)
			}
		}
	}
}

func BenchmarkSgemm(b *testing.B) {
	for _, kern := range sgemmKernels() {
		for _, s := range [][3]int{{2048, 128, 128}, {128, 344, 2048}, {2048, 320, 128}} {
			M, N, K := s[0], s[1], s[2]
			A, B, C := make([]float32, M*K), make([]float32, K*N), make([]float32, M*N)
			b.Run(fmt.Sprintf("%s/%dx%dx%d", kern.name, M, N, K), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					sgemm(kern, 2, false, false, true, M, N, K, 1, A, K, B, K, 0, C, N)
				}
				b.ReportMetric(float64(2*M*N*K)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
