//go:build linux && (amd64 || arm64)

package cuda

import "github.com/compact-llm/compact/internal/gpu"

// csrc/rope.cu: rotary embedding in place; rope_rows (8 rows a block,
// 16-byte vectors) where D and the alignment allow, else one thread per
// rotated pair (grid-stride).
type ropeKernels struct {
	rope ropeKernel
	rows ropeRowsKernel
}

func (k *ropeKernels) bindings() []binding {
	return []binding{{"rope", &k.rope.kernel, 256}, {"rope_rows", &k.rows.kernel, 256}}
}

// ropeRows is csrc/rope.cu's ROPE_ROWS; ropeMaxHalf its ROPE_MAX_HALF.
const (
	ropeRows    = 8
	ropeMaxHalf = 64
)

type ropeRowsKernel struct{ kernel }

func (k ropeRowsKernel) launch(x devPtr[bf16], N, T, heads, D int32, theta float32, inverse bool) {
	k.run(k.strided(int64(N), ropeRows, 32), 0, x.arg(), argI32(N), argI32(T), argI32(heads), argI32(D), argF32(theta), argBool(inverse))
}

type ropeKernel struct{ kernel }

func (k ropeKernel) launch(x devPtr[bf16], N, T, heads, D int32, theta float32, inverse bool) {
	pairs := int64(N) * int64(D/2)
	k.run(k.strided(pairs, int64(k.block), 32), 0, x.arg(), argI32(N), argI32(T), argI32(heads), argI32(D), argF32(theta), argBool(inverse))
}

func (c *Backend) RoPE(x *gpu.Tensor, T, heads, D int, theta float32, inverse bool) {
	N := x.Len() / (heads * D)
	if p := low(x); D%16 == 0 && D/2 <= ropeMaxHalf && aligned16(p) {
		c.k.rope.rows.launch(p, i32(N), i32(T), i32(heads), i32(D), theta, inverse)
		return
	}
	c.k.rope.rope.launch(low(x), i32(N), i32(T), i32(heads), i32(D), theta, inverse)
}
