//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
)

// csrc/attention.cu: causal grouped-query attention, forward and backward:
// pipelined tensor-core kernels for D = 64, the earlier tensor-core kernels
// (d64 _v1, d128) and a generic one for D <= 256.
type attentionKernels struct {
	fwd   attentionDims[attentionFwd]
	delta attentionDelta
	bwd   attentionDims[attentionBwd]
}

// attentionDims are one kernel's head-dim variants. d64 needs 16-byte aligned
// tensors (cp.async); d64v1 takes any alignment and is the benchmarks'
// baseline.
type attentionDims[K any] struct{ d64, d64v1, d128, generic K }

// pick chooses the variant for head dim D; aligned says whether every bf16
// tensor of the call starts on a 16-byte boundary.
func (v *attentionDims[K]) pick(D int, aligned bool) *K {
	switch {
	case D == 64 && aligned:
		return &v.d64
	case D == 64:
		return &v.d64v1
	case D == 128:
		return &v.d128
	case D > 256:
		panic(fmt.Sprintf("cuda: attention head dim %d > 256", D))
	}
	return &v.generic
}

// aligned16 says whether every pointer is 16-byte aligned.
func aligned16(ps ...devPtr[bf16]) bool {
	for _, p := range ps {
		if p%16 != 0 {
			return false
		}
	}
	return true
}

func (k *attentionKernels) bindings() []binding {
	return []binding{
		{"attention_fwd_d64", &k.fwd.d64.kernel, 256},
		{"attention_fwd_d64_v1", &k.fwd.d64v1.kernel, 128},
		{"attention_fwd_d128", &k.fwd.d128.kernel, 128},
		{"attention_fwd", &k.fwd.generic.kernel, 128},
		{"attention_bwd_delta", &k.delta.kernel, 256},
		{"attention_bwd_d64", &k.bwd.d64.kernel, 128},
		{"attention_bwd_d64_v1", &k.bwd.d64v1.kernel, 128},
		{"attention_bwd_d128", &k.bwd.d128.kernel, 128},
		{"attention_bwd", &k.bwd.generic.kernel, 128},
	}
}

// keyTile is the key (and query) rows of one backward block.
const keyTile = 64

func tiles(T, rows int32) int32 { return (T + rows - 1) / rows }

// attentionFwd runs one block per (sequence, head, query tile); every
// forward kernel gives each warp 16 query rows, so the tile is 16 per warp.
type attentionFwd struct{ kernel }

func (k attentionFwd) launch(out devPtr[bf16], lse devPtr[float32], q, kk, v devPtr[bf16], B, T, H, KV, D int32) {
	rows := int32(k.block/32) * 16
	k.run(blocks(int(B*H*tiles(T, rows))), 0, out.arg(), lse.arg(), q.arg(), kk.arg(), v.arg(),
		argI32(B), argI32(T), argI32(H), argI32(KV), argI32(D))
}

// attentionDelta runs rpw rows per warp: 256/D with 16-byte loads when D
// divides 256 in multiples of 8 and both tensors are aligned, else 1.
type attentionDelta struct{ kernel }

func (k attentionDelta) launch(delta devPtr[float32], dout, out devPtr[bf16], B, T, H, D int32) {
	rpw := int32(1)
	if D%8 == 0 && 256%D == 0 && aligned16(dout, out) {
		rpw = 256 / D
	}
	rows := B * H * T
	perBlock := int32(k.block/32) * rpw
	k.run(blocks(int((rows+perBlock-1)/perBlock)), 0, delta.arg(), dout.arg(), out.arg(),
		argI32(B), argI32(T), argI32(H), argI32(D), argI32(rpw))
}

// attentionBwd runs one block per (sequence, kv head, key tile) for dk, dv
// followed by one per (sequence, head, query tile) for dq.
type attentionBwd struct{ kernel }

func (k attentionBwd) launch(dq, dk, dv, dout, q, kk, v, out devPtr[bf16], lse, delta devPtr[float32], B, T, H, KV, D int32) {
	nb := tiles(T, keyTile)
	k.run(blocks(int(B*KV*nb+B*H*nb)), 0, dq.arg(), dk.arg(), dv.arg(), dout.arg(), q.arg(), kk.arg(), v.arg(), out.arg(),
		lse.arg(), delta.arg(), argI32(B), argI32(T), argI32(H), argI32(KV), argI32(D))
}

func (c *Backend) Attention(out, lse, q, k, v *gpu.Tensor, B, T, H, KV, D int) {
	po, pq, pk, pv := low(out), low(q), low(k), low(v)
	c.k.attention.fwd.pick(D, aligned16(po, pq, pk, pv)).launch(po, full(lse), pq, pk, pv, i32(B), i32(T), i32(H), i32(KV), i32(D))
}

func (c *Backend) AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *gpu.Tensor, B, T, H, KV, D int) {
	ps := [...]devPtr[bf16]{low(dq), low(dk), low(dv), low(dout), low(q), low(k), low(v), low(out)}
	c.attentionBackward(c.k.attention.bwd.pick(D, aligned16(ps[:]...)), ps, full(lse), B, T, H, KV, D)
}

// attentionBackward runs delta then the given backward kernel; ps are dq,
// dk, dv, dout, q, k, v, out.
func (c *Backend) attentionBackward(bwd *attentionBwd, ps [8]devPtr[bf16], lse devPtr[float32], B, T, H, KV, D int) {
	delta := c.scratchFloats(int64(B * H * T))
	c.k.attention.delta.launch(delta, ps[3], ps[7], i32(B), i32(T), i32(H), i32(D))
	bwd.launch(ps[0], ps[1], ps[2], ps[3], ps[4], ps[5], ps[6], ps[7], lse, delta, i32(B), i32(T), i32(H), i32(KV), i32(D))
}
