//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
)

// csrc/projection.cu: CompAct's random projection P from the Philox
// stream, one thread per block of 4 elements (grid-stride).
type projectionKernels struct {
	f32  projectionKernel[float32] // projection_f32
	bf16 projectionKernel[bf16]    // projection_bf16
}

func (k *projectionKernels) bindings() []binding {
	return []binding{
		{"projection_f32", &k.f32.kernel, 256},
		{"projection_bf16", &k.bf16.kernel, 256},
	}
}

type projectionKernel[E elem] struct{ kernel }

func (k projectionKernel[E]) launch(P devPtr[E], n, r, ld int32, s gpu.ProjectionStream) {
	philoxBlocks := (int64(n)*int64(r) + 3) / 4
	k.run(k.strided(philoxBlocks, int64(k.block), 32), 0, P.arg(), argI32(n), argI32(r), argI32(ld), argI32(int32(s.Kind)),
		argU32(uint32(s.Seed)), argU32(uint32(s.Seed>>32)), argU32(s.Stream), argU32(s.Epoch))
}

// Projection writes the stream's (n, s.Rank) matrix into P (n, cols) at row
// stride cols, zeros in the columns after the rank.
func (c *Backend) Projection(P *gpu.Tensor, s gpu.ProjectionStream) {
	n, r, cols, ok := s.Dims(P)
	if !ok {
		panic(fmt.Sprintf("cuda: Projection: %s must be (n, cols) with rank %d in [1, cols]", P, s.Rank))
	}
	if P.Prec == gpu.Low {
		c.k.projection.bf16.launch(low(P), i32(n), i32(r), i32(cols), s)
	} else {
		c.k.projection.f32.launch(full(P), i32(n), i32(r), i32(cols), s)
	}
}
