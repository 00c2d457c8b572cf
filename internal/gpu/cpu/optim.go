// CPU optimizer ops: gradient norm (SumSquares, ClipScale) and the
// projection generator; Adam is in adam.go, rounding in round.go.
package cpu

import (
	"github.com/compact-llm/compact/internal/gpu"
	"math"

	"github.com/compact-llm/compact/internal/projection"
)

// sumChunk is the fixed block size of SumSquares' partial sums. Because it
// does not depend on the thread count, the norm is bit-identical for any
// number of threads.
const sumChunk = 1 << 12

// SumSquares adds the sum of squares of every element of ts to acc[0]; the
// sum is taken in float64 and rounded to T once.
func (c *Backend[T]) SumSquares(acc *gpu.Tensor, ts ...*gpu.Tensor) {
	checkLen("SumSquares acc", acc, 1)
	var total float64
	for _, t := range ts {
		d := c.f(t)
		parts := make([]float64, (len(d)+sumChunk-1)/sumChunk)
		c.parallel(len(parts), max(1, elemGrain/sumChunk), func(lo, hi int) {
			for p := lo; p < hi; p++ {
				var s float64
				for _, x := range d[p*sumChunk : min(len(d), (p+1)*sumChunk)] {
					s += float64(x) * float64(x)
				}
				parts[p] = s
			}
		})
		for _, s := range parts {
			total += s
		}
	}
	a := c.f(acc)
	a[0] = T(float64(a[0]) + total)
}

// ClipScale: clip[0] = min(1, maxNorm / (sqrt(sumSq[0]) + 1e-6)), or 1 when
// maxNorm <= 0.
func (c *Backend[T]) ClipScale(clip, sumSq *gpu.Tensor, maxNorm float32) {
	checkLen("ClipScale clip", clip, 1)
	checkLen("ClipScale sumSq", sumSq, 1)
	s := 1.0
	if maxNorm > 0 {
		s = min(1, float64(maxNorm)/(math.Sqrt(float64(c.f(sumSq)[0]))+1e-6))
	}
	c.f(clip)[0] = T(s)
}

// Projection fills P (n, cols) from the shared Philox generator: float64 is
// the exact reference, float32 its rounding, and a Low P holds that rounded
// to the nearest bf16, as CUDA's projection_bf16 stores it (so the CPU
// forward and the decompressed update read the P that CUDA reads). The
// logical (n, r) matrix lands at row stride cols, zeros after it in each
// row. projection.Fill is serial.
func (c *Backend[T]) Projection(P *gpu.Tensor, s gpu.ProjectionStream) {
	n, r, cols, ok := s.Dims(P)
	check(ok, "Projection: %s must be (n, cols) with rank %d in [1, cols]", P, s.Rank)
	kind := projection.Gaussian
	switch s.Kind {
	case gpu.Gaussian:
	case gpu.Rademacher:
		kind = projection.Rademacher
	default:
		check(false, "Projection: unknown kind %d", int(s.Kind))
	}
	d := c.f(P)
	dense := d // the (n, r) matrix: P itself unless padded
	if cols != r {
		dense = make([]T, n*r)
	}
	switch d := any(dense).(type) {
	case []float32:
		projection.Fill32(d, n, r, kind, s.Seed, s.Stream, s.Epoch)
	case []float64:
		projection.Fill(d, n, r, kind, s.Seed, s.Stream, s.Epoch)
	}
	if cols != r {
		for i := range n {
			row := d[i*cols : (i+1)*cols]
			copy(row, dense[i*r:(i+1)*r])
			clear(row[r:])
		}
	}
	if P.Prec == gpu.Low {
		c.parallel(len(d), elemGrain, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				d[i] = T(gpu.BF16Nearest(float32(d[i])))
			}
		})
	}
}
