package cpu

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
)

// mapBody is the math of op, one element at a time: the readable reference of
// its kernels in csrc/elementwise.cu. A new gpu.MapOp gets its case here.
func mapBody[T float32 | float64](op gpu.MapOp, alpha T) func(x T) T {
	switch op {
	case gpu.MapScale:
		return func(x T) T { return alpha * x }
	}
	panic(fmt.Sprintf("gpu/cpu: Map of unknown op %v", op))
}

func (c *Backend[T]) Map(op gpu.MapOp, x *gpu.Tensor, alpha float32) {
	f, xd := mapBody(op, T(alpha)), c.f(x)
	c.parallel(len(xd), elemGrain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xd[i] = f(xd[i])
		}
	})
}
