//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
)

// csrc/decode.cu: KV-cache generation (gpu.Decoder): RoPE at one position
// and one query row per sequence attending to the cache.
type decodeKernels struct {
	ropeAt    ropeAtKernel
	attention attentionDecode
}

func (k *decodeKernels) bindings() []binding {
	return []binding{
		{"rope_at", &k.ropeAt.kernel, 256},
		{"attention_decode", &k.attention.kernel, 128},
	}
}

type ropeAtKernel struct{ kernel }

func (k ropeAtKernel) launch(x devPtr[bf16], N, pos, heads, D int32, theta float32) {
	pairs := int64(N) * int64(D/2)
	k.run(k.strided(pairs, int64(k.block), 32), 0, x.arg(), argI32(N), argI32(pos), argI32(heads), argI32(D), argF32(theta))
}

// decodeMaxPositions keeps attention_decode's scores in 48 KiB of shared memory.
const decodeMaxPositions = 48<<10/4 - 32

// attentionDecode runs one block per (sequence, head) with the t scores in
// dynamic shared memory.
type attentionDecode struct{ kernel }

func (k attentionDecode) launch(out, q, kc, vc devPtr[bf16], B, t, H, KV, D int32) {
	k.run(blocks(int(B*H)), uint32((t+32)*4), out.arg(), q.arg(), kc.arg(), vc.arg(),
		argI32(B), argI32(t), argI32(H), argI32(KV), argI32(D))
}

// RoPEAt rotates every row of x as position pos (KV-cache decoding).
func (c *Backend) RoPEAt(x *gpu.Tensor, pos, heads, D int, theta float32) {
	N := x.Len() / (heads * D)
	c.k.decode.ropeAt.launch(low(x), i32(N), i32(pos), i32(heads), i32(D), theta)
}

// AttentionDecode attends one query row per sequence to the first t cached
// positions (see gpu.Decoder).
func (c *Backend) AttentionDecode(out, q, kc, vc *gpu.Tensor, B, t, H, KV, D int) {
	if t > decodeMaxPositions {
		panic(fmt.Sprintf("cuda: attention_decode over %d positions (at most %d)", t, decodeMaxPositions))
	}
	c.k.decode.attention.launch(low(out), low(q), low(kc), low(vc), i32(B), i32(t), i32(H), i32(KV), i32(D))
}
