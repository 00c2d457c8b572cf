//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
)

// csrc/attention.cu: causal grouped-query attention, forward and backward,
// tensor-core kernels for D = 64 and 128 and a generic one for D <= 256.
type attentionKernels struct {
	fwd   attentionDims[attentionFwd]
	delta attentionDelta
	bwd   attentionDims[attentionBwd]
}

// attentionDims are one kernel's head-dim variants.
type attentionDims[K any] struct{ d64, d128, generic K }

// pick chooses the variant for head dim D.
func (v *attentionDims[K]) pick(D int) *K {
	switch {
	case D == 64:
		return &v.d64
	case D == 128:
		return &v.d128
	case D > 256:
		panic(fmt.Sprintf("cuda: attention head dim %d > 256", D))
	}
	return &v.generic
}

func (k *attentionKernels) bindings() []binding {
	return []binding{
		{"attention_fwd_d64", &k.fwd.d64.kernel, 128},
		{"attention_fwd_d128", &k.fwd.d128.kernel, 128},
		{"attention_fwd", &k.fwd.generic.kernel, 128},
		{"attention_bwd_delta", &k.delta.kernel, 256},
		{"attention_bwd_d64", &k.bwd.d64.kernel, 128},
		{"attention_bwd_d128", &k.bwd.d128.kernel, 128},
		{"attention_bwd", &k.bwd.generic.kernel, 128},
	}
}

// queryTile is the query rows one attention block handles.
const queryTile = 64

func tiles(T int32) int32 { return (T + queryTile - 1) / queryTile }

// attentionFwd runs one block per (sequence, head, query tile).
type attentionFwd struct{ kernel }

func (k attentionFwd) launch(out devPtr[bf16], lse devPtr[float32], q, kk, v devPtr[bf16], B, T, H, KV, D int32) {
	k.run(blocks(int(B*H*tiles(T))), 0, out.arg(), lse.arg(), q.arg(), kk.arg(), v.arg(),
		argI32(B), argI32(T), argI32(H), argI32(KV), argI32(D))
}

// attentionDelta runs one warp per (sequence, head, position) row.
type attentionDelta struct{ kernel }

func (k attentionDelta) launch(delta devPtr[float32], dout, out devPtr[bf16], B, T, H, D int32) {
	rows := B * H * T
	warps := int32(k.block / 32)
	k.run(blocks(int((rows+warps-1)/warps)), 0, delta.arg(), dout.arg(), out.arg(), argI32(B), argI32(T), argI32(H), argI32(D))
}

// attentionBwd runs one block per (sequence, kv head, key tile) for dk, dv
// followed by one per (sequence, head, query tile) for dq.
type attentionBwd struct{ kernel }

func (k attentionBwd) launch(dq, dk, dv, dout, q, kk, v, out devPtr[bf16], lse, delta devPtr[float32], B, T, H, KV, D int32) {
	nb := tiles(T)
	k.run(blocks(int(B*KV*nb+B*H*nb)), 0, dq.arg(), dk.arg(), dv.arg(), dout.arg(), q.arg(), kk.arg(), v.arg(), out.arg(),
		lse.arg(), delta.arg(), argI32(B), argI32(T), argI32(H), argI32(KV), argI32(D))
}

func (c *Backend) Attention(out, lse, q, k, v *gpu.Tensor, B, T, H, KV, D int) {
	c.k.attention.fwd.pick(D).launch(low(out), full(lse), low(q), low(k), low(v), i32(B), i32(T), i32(H), i32(KV), i32(D))
}

func (c *Backend) AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *gpu.Tensor, B, T, H, KV, D int) {
	delta := c.scratchFloats(int64(B * H * T))
	c.k.attention.delta.launch(delta, low(dout), low(out), i32(B), i32(T), i32(H), i32(D))
	c.k.attention.bwd.pick(D).launch(low(dq), low(dk), low(dv), low(dout), low(q), low(k), low(v), low(out),
		full(lse), delta, i32(B), i32(T), i32(H), i32(KV), i32(D))
}
