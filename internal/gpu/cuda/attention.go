//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"slices"

	"github.com/compact-llm/compact/internal/gpu"
)

// csrc/attention.cu: causal grouped-query attention, forward and backward:
// pipelined tensor-core kernels for D = 64 in several tile/stage variants,
// the earlier tensor-core kernels (d64 _v1, d128) and a generic one for
// D <= 256.
type attentionKernels struct {
	fwd   attentionDims[attentionFwd]
	delta attentionDelta
	bwd   attentionDims[attentionBwd]
}

// d64Variant is one pipelined D = 64 kernel of csrc/attention.cu: warps per
// block (16 rows each), shared-memory stages of the streamed tiles, the
// resident blocks per SM its __launch_bounds__ asks for, and (backward only)
// the query rows of a dk/dv step.
type d64Variant struct{ warps, stages, minBlocks, qrows int }

func (v d64Variant) String() string {
	s := fmt.Sprintf("w%ds%dm%d", v.warps, v.stages, v.minBlocks)
	if v.qrows > 0 {
		s += fmt.Sprintf("q%d", v.qrows)
	}
	return s
}

// The variants compiled into csrc/attention.cu (ATTN_FWD_ENTRY,
// ATTN_BWD_ENTRY), in its order. The first of each fits in 48 KiB of shared
// memory, which every device allows.
var (
	fwdD64Variants = []d64Variant{{8, 2, 2, 0}, {8, 3, 2, 0}, {4, 2, 4, 0}, {4, 2, 5, 0}, {4, 3, 4, 0}, {4, 4, 3, 0}}
	bwdD64Variants = []d64Variant{{4, 2, 4, 32}, {4, 2, 3, 32}, {4, 3, 4, 32}, {4, 3, 3, 32}, {8, 2, 2, 32}, {8, 3, 2, 32},
		{4, 2, 3, 64}, {4, 3, 3, 64}}
)

// shortT is the longest sequence that takes the short-sequence variants:
// there a block's few key tiles make latency and occupancy the limit, beyond
// it the tensor-core work.
const shortT = 256

// The pipelined variants the backend runs, by name, for T <= shortT and for
// longer sequences: the fastest of TestCUDAAttentionThroughput's sweep on
// the H200 (2026-12-03, B*H*T*D of 350m; x the _v1 kernels): T = 256 fwd
// w4s2m4 91.8 TFLOP/s (1.86x), bwd w4s2m4q32 81.5 (1.76x); T = 1024 fwd
// w8s3m2 192.0 (2.31x), bwd w4s3m3q64 149.1 (1.75x).
var d64Defaults = struct{ fwdShort, fwdLong, bwdShort, bwdLong string }{
	fwdShort: "w4s2m4", fwdLong: "w8s3m2", bwdShort: "w4s2m4q32", bwdLong: "w4s3m3q64",
}

// Bytes of the shared-memory layouts of attn_fwd3 and attn_bwd3 (Fwd3Layout,
// Bwd3Layout): bf16 rows of D + 8 = 72 halves, key tiles of 64 rows.
const sr64 = 64 + 8

func (v d64Variant) fwdSmem() uint32 { return uint32(v.stages * 2 * 64 * sr64 * 2) }

func (v d64Variant) bwdSmem() uint32 {
	kb := 16 * v.warps
	dkdv := 2*(2*kb*sr64+v.stages*2*v.qrows*sr64) + v.stages*2*v.qrows*4
	stage := 2 * 64 * sr64
	dq := 2 * max(v.stages*stage, (v.stages-1)*stage+2*kb*sr64)
	return uint32(max(dkdv, dq))
}

// attentionDims are one kernel's head-dim variants. The d64 ones need
// 16-byte aligned tensors (cp.async); d64v1 takes any alignment and is the
// benchmarks' baseline.
type attentionDims[K any] struct {
	d64                  []K // one per fwdD64Variants / bwdD64Variants entry
	d64v1, d128, generic K
	short, long          int // indices into d64 for T <= shortT and longer
}

// pick chooses the variant for head dim D and sequence length T; aligned
// says whether every bf16 tensor of the call starts on a 16-byte boundary.
func (v *attentionDims[K]) pick(D, T int, aligned bool) *K {
	switch {
	case D == 64 && aligned && T <= shortT:
		return &v.d64[v.short]
	case D == 64 && aligned:
		return &v.d64[v.long]
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
	bs := []binding{
		{"attention_fwd_d64_v1", &k.fwd.d64v1.kernel, 128},
		{"attention_fwd_d128", &k.fwd.d128.kernel, 128},
		{"attention_fwd", &k.fwd.generic.kernel, 128},
		{"attention_bwd_delta", &k.delta.kernel, 256},
		{"attention_bwd_d64_v1", &k.bwd.d64v1.kernel, 128},
		{"attention_bwd_d128", &k.bwd.d128.kernel, 128},
		{"attention_bwd", &k.bwd.generic.kernel, 128},
	}
	k.fwd.d64 = make([]attentionFwd, len(fwdD64Variants))
	k.bwd.d64 = make([]attentionBwd, len(bwdD64Variants))
	for i, v := range fwdD64Variants {
		k.fwd.d64[i].variant, k.fwd.d64[i].smem = v, v.fwdSmem()
		bs = append(bs, binding{"attention_fwd_d64_" + v.String(), &k.fwd.d64[i].kernel, uint32(32 * v.warps)})
	}
	for i, v := range bwdD64Variants {
		k.bwd.d64[i].variant, k.bwd.d64[i].smem = v, v.bwdSmem()
		bs = append(bs, binding{"attention_bwd_d64_" + v.String(), &k.bwd.d64[i].kernel, uint32(32 * v.warps)})
	}
	return bs
}

// prepare runs once the kernels are bound: it lets the pipelined variants use
// their dynamic shared memory (past 48 KiB only after opting in), marks the
// ones the device cannot hold, and resolves the default variants' names.
func (k *attentionKernels) prepare(d *device) error {
	var fwd, bwd []*pipelined
	for i := range k.fwd.d64 {
		fwd = append(fwd, &k.fwd.d64[i].pipelined)
	}
	for i := range k.bwd.d64 {
		bwd = append(bwd, &k.bwd.d64[i].pipelined)
	}
	for _, p := range append(slices.Clip(fwd), bwd...) {
		if int(p.smem) > d.MaxSharedMemPerBlockOptin() {
			p.unfit = true
			continue
		}
		if p.smem > 48<<10 {
			if err := p.fn.SetMaxDynamicSharedMem(int(p.smem)); err != nil {
				return fmt.Errorf("attention: %w", err)
			}
		}
	}
	for _, c := range []struct {
		dst  *int
		ps   []*pipelined
		name string
	}{
		{&k.fwd.short, fwd, d64Defaults.fwdShort}, {&k.fwd.long, fwd, d64Defaults.fwdLong},
		{&k.bwd.short, bwd, d64Defaults.bwdShort}, {&k.bwd.long, bwd, d64Defaults.bwdLong},
	} {
		i := slices.IndexFunc(c.ps, func(p *pipelined) bool { return p.variant.String() == c.name })
		if i < 0 {
			return fmt.Errorf("attention: no d64 variant %q", c.name)
		}
		if c.ps[i].unfit {
			i = 0 // the first variant of each list fits in 48 KiB, which every device allows
		}
		*c.dst = i
	}
	return nil
}

// pipelined is a pipelined D = 64 kernel: its variant, its dynamic shared
// memory and whether the device can hold that.
type pipelined struct {
	kernel
	variant d64Variant
	smem    uint32
	unfit   bool
}

// attentionFwd runs one block per (sequence, head, query tile); every
// forward kernel gives each warp 16 query rows, so the tile is 16 per warp.
// smem is the dynamic shared memory of a pipelined variant (0 otherwise).
type attentionFwd struct{ pipelined }

func (k attentionFwd) launch(out devPtr[bf16], lse devPtr[float32], q, kk, v devPtr[bf16], B, T, H, KV, D int32) {
	rows := int32(k.block/32) * 16
	k.run(blocks(int(B*H*tiles(T, rows))), k.smem, out.arg(), lse.arg(), q.arg(), kk.arg(), v.arg(),
		argI32(B), argI32(T), argI32(H), argI32(KV), argI32(D))
}

func tiles(T, rows int32) int32 { return (T + rows - 1) / rows }

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
// followed by one per (sequence, head, query tile) for dq; both tiles are 16
// rows per warp.
type attentionBwd struct{ pipelined }

func (k attentionBwd) launch(dq, dk, dv, dout, q, kk, v, out devPtr[bf16], lse, delta devPtr[float32], B, T, H, KV, D int32) {
	nb := tiles(T, int32(k.block/32)*16)
	k.run(blocks(int(B*KV*nb+B*H*nb)), k.smem, dq.arg(), dk.arg(), dv.arg(), dout.arg(), q.arg(), kk.arg(), v.arg(), out.arg(),
		lse.arg(), delta.arg(), argI32(B), argI32(T), argI32(H), argI32(KV), argI32(D))
}

func (c *Backend) Attention(out, lse, q, k, v *gpu.Tensor, B, T, H, KV, D int) {
	po, pq, pk, pv := low(out), low(q), low(k), low(v)
	c.k.attention.fwd.pick(D, T, aligned16(po, pq, pk, pv)).launch(po, full(lse), pq, pk, pv, i32(B), i32(T), i32(H), i32(KV), i32(D))
}

func (c *Backend) AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *gpu.Tensor, B, T, H, KV, D int) {
	ps := [...]devPtr[bf16]{low(dq), low(dk), low(dv), low(dout), low(q), low(k), low(v), low(out)}
	c.attentionBackward(c.k.attention.bwd.pick(D, T, aligned16(ps[:]...)), ps, full(lse), B, T, H, KV, D)
}

// attentionBackward runs delta then the given backward kernel; ps are dq,
// dk, dv, dout, q, k, v, out.
func (c *Backend) attentionBackward(bwd *attentionBwd, ps [8]devPtr[bf16], lse devPtr[float32], B, T, H, KV, D int) {
	delta := c.scratchFloats(int64(B * H * T))
	c.k.attention.delta.launch(delta, ps[3], ps[7], i32(B), i32(T), i32(H), i32(D))
	bwd.launch(ps[0], ps[1], ps[2], ps[3], ps[4], ps[5], ps[6], ps[7], lse, delta, i32(B), i32(T), i32(H), i32(KV), i32(D))
}
