//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compact-llm/compact/csrc"
	"github.com/compact-llm/compact/internal/gpu"
)

// Compile failures of csrc would otherwise surface as skipped tests ("no
// usable CUDA device"): on a machine with a device, opening the backend must
// work, and the error carries NVRTC's log.
func TestCUDAKernelsCompile(t *testing.T) {
	n, err := deviceCount()
	if err != nil || n == 0 {
		t.Skipf("no CUDA device (%d, %v)", n, err)
	}
	cudaOnce.Do(func() { cudaBE, cudaErr = New(0) })
	if cudaErr != nil {
		t.Fatalf("a CUDA device is present but the backend does not open:\n%v", cudaErr)
	}
}

// attentionVariant is one forward and backward kernel pair.
type attentionVariant struct {
	name string
	fwd  *attentionFwd
	bwd  *attentionBwd
}

// attentionVariants are the kernels the backend picks for head dim D with
// aligned tensors; for D = 64 every pipelined variant (forward i paired
// with backward i, the shorter list repeating its last; the device-unfit
// ones left out) and the unpipelined _v1 pair (what it picks for unaligned
// tensors).
func attentionVariants(g *Backend, D int) []attentionVariant {
	a := &g.k.attention
	if D != 64 {
		return []attentionVariant{{"picked", a.fwd.pick(D, 1, true), a.bwd.pick(D, 1, true)}}
	}
	var vs []attentionVariant
	for i := range max(len(a.fwd.d64), len(a.bwd.d64)) {
		f, b := &a.fwd.d64[min(i, len(a.fwd.d64)-1)], &a.bwd.d64[min(i, len(a.bwd.d64)-1)]
		if !f.unfit && !b.unfit {
			vs = append(vs, attentionVariant{"fwd " + f.variant.String() + " bwd " + b.variant.String(), f, b})
		}
	}
	return append(vs, attentionVariant{"d64_v1", &a.fwd.d64v1, &a.bwd.d64v1})
}

func (v attentionVariant) forward(out, lse, q, k, vv *gpu.Tensor, B, T, H, KV, D int) {
	v.fwd.launch(low(out), full(lse), low(q), low(k), low(vv), i32(B), i32(T), i32(H), i32(KV), i32(D))
}

func (v attentionVariant) backward(g *Backend, dq, dk, dv, dout, q, k, vv, out, lse *gpu.Tensor, B, T, H, KV, D int) {
	ps := [...]devPtr[bf16]{low(dq), low(dk), low(dv), low(dout), low(q), low(k), low(vv), low(out)}
	g.attentionBackward(v.bwd, ps, full(lse), B, T, H, KV, D)
}

// Every attention kernel against the CPU reference: partial tiles (T = 1,
// 17, 255), exact tiles (64, 256), long sequences (1024), head dims 32
// (generic), 64 (every pipelined variant and _v1), 128, grouped-query heads
// (KV < H).
func TestCUDAAttention(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct{ B, T, H, KV, D int }{
		{2, 1, 4, 2, 64}, {2, 17, 4, 2, 64}, {2, 37, 4, 2, 64}, {2, 64, 6, 1, 64}, {1, 255, 4, 2, 64},
		{2, 256, 2, 2, 64}, {1, 1024, 2, 1, 64},
		{2, 17, 4, 2, 32}, {1, 256, 2, 1, 32}, {1, 1024, 1, 1, 32},
		{2, 1, 2, 1, 128}, {1, 130, 2, 2, 128}, {1, 255, 4, 2, 128}, {1, 1024, 2, 1, 128},
	} {
		N := c.B * c.T
		q, k, v := h.randn(gpu.Low, 1, N, c.H*c.D), h.randn(gpu.Low, 1, N, c.KV*c.D), h.randn(gpu.Low, 1, N, c.KV*c.D)
		dout := h.randn(gpu.Low, 1, N, c.H*c.D)
		out, lse := h.alloc(gpu.Low, N, c.H*c.D), h.alloc(gpu.Full, c.B*c.H*c.T)
		dq, dk, dv := h.alloc(gpu.Low, N, c.H*c.D), h.alloc(gpu.Low, N, c.KV*c.D), h.alloc(gpu.Low, N, c.KV*c.D)
		h.c.Attention(out.c, lse.c, q.c, k.c, v.c, c.B, c.T, c.H, c.KV, c.D)
		for _, vr := range attentionVariants(h.g, c.D) {
			t.Logf("B=%d T=%d H=%d KV=%d D=%d, %s kernels", c.B, c.T, c.H, c.KV, c.D, vr.name)
			vr.forward(out.g, lse.g, q.g, k.g, v.g, c.B, c.T, c.H, c.KV, c.D)
			h.expect("attention out", out, tolBF16)
			h.expect("attention lse", lse, 1e-4)
			// Both backwards from the GPU's forward results, so they see the same inputs.
			og, _ := h.g.Download(out.g)
			lg, _ := h.g.Download(lse.g)
			h.set(out, og)
			h.set(lse, lg)
			h.c.AttentionBackward(dq.c, dk.c, dv.c, dout.c, q.c, k.c, v.c, out.c, lse.c, c.B, c.T, c.H, c.KV, c.D)
			vr.backward(h.g, dq.g, dk.g, dv.g, dout.g, q.g, k.g, v.g, out.g, lse.g, c.B, c.T, c.H, c.KV, c.D)
			if c.T == 1 {
				// One key: p = 1 and o = v, so dq = dk = 0 exactly and
				// both sides hold rounding noise; a relative error of
				// noise against noise means nothing, so bound it instead.
				h.expectZero("attention dq", dq, 1e-3)
				h.expectZero("attention dk", dk, 1e-3)
			} else {
				h.expect("attention dq", dq, 2*tolBF16)
				h.expect("attention dk", dk, 2*tolBF16)
			}
			h.expect("attention dv", dv, 2*tolBF16)
			h.c.Attention(out.c, lse.c, q.c, k.c, v.c, c.B, c.T, c.H, c.KV, c.D) // the CPU's own again
		}
	}
}

// The public entry points route unaligned D = 64 tensors (views one element
// in) to the _v1 kernels; results match the CPU.
func TestCUDAAttentionUnaligned(t *testing.T) {
	h := newHarness(t)
	const B, T, H, KV, D = 1, 70, 2, 1, 64
	N := B * T
	view := func(p gpu.Precision, scale float64, n int) (pair, pair) {
		whole := h.randn(p, scale, n+1)
		return whole, pair{whole.c.Rows(1, n+1), whole.g.Rows(1, n+1)}
	}
	_, q := view(gpu.Low, 1, N*H*D)
	_, k := view(gpu.Low, 1, N*KV*D)
	_, v := view(gpu.Low, 1, N*KV*D)
	_, dout := view(gpu.Low, 1, N*H*D)
	outW, out := view(gpu.Low, 0, N*H*D)
	dqW, dq := view(gpu.Low, 0, N*H*D)
	dkW, dk := view(gpu.Low, 0, N*KV*D)
	dvW, dv := view(gpu.Low, 0, N*KV*D)
	lse := h.alloc(gpu.Full, B*H*T)
	if aligned16(low(q.g), low(out.g)) {
		t.Fatal("the views are 16-byte aligned: this test would not reach the _v1 kernels")
	}
	h.c.Attention(out.c, lse.c, q.c, k.c, v.c, B, T, H, KV, D)
	h.g.Attention(out.g, lse.g, q.g, k.g, v.g, B, T, H, KV, D)
	h.expect("unaligned attention out", outW, tolBF16)
	h.expect("unaligned attention lse", lse, 1e-4)
	h.c.AttentionBackward(dq.c, dk.c, dv.c, dout.c, q.c, k.c, v.c, out.c, lse.c, B, T, H, KV, D)
	h.g.AttentionBackward(dq.g, dk.g, dv.g, dout.g, q.g, k.g, v.g, out.g, lse.g, B, T, H, KV, D)
	h.expect("unaligned attention dq", dqW, 2*tolBF16)
	h.expect("unaligned attention dk", dkW, 2*tolBF16)
	h.expect("unaligned attention dv", dvW, 2*tolBF16)
}

// cuFuncAttrLocalSizeBytes is cuda.h's CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES:
// a thread's local memory, nonzero when registers spill.
const cuFuncAttrLocalSizeBytes int32 = 3

// attentionTiming is one timed kernel of TestCUDAAttentionThroughput.
type attentionTiming struct {
	name string
	ms   float64
}

// timingBoard times the kernels of one direction and shape: _v1 (timed
// first, the baseline of the speedups) and the fastest pipelined variant.
type timingBoard struct {
	timeMs func(reps int, f func()) float64
	row    func(dir string, p *pipelined, ms, flop, v1ms float64)
	v1ms   float64
	best   attentionTiming
}

func (tb *timingBoard) time(dir string, p *pipelined, run func(), flop float64) {
	ms := tb.timeMs(20, run)
	if p.smem == 0 {
		tb.v1ms = ms
	} else if tb.best.name == "" || ms < tb.best.ms {
		tb.best = attentionTiming{p.variant.String(), ms}
	}
	tb.row(dir, p, ms, flop, tb.v1ms)
}

// TestCUDAAttentionThroughput checks and times every D = 64 kernel, forward
// and backward separately (each pipelined variant and _v1), at the
// llama-350m shape (T = 256) and at T = 1024. Each kernel is first compared
// with the CPU on the first and the last sequence and with _v1 on all of
// them; only a kernel that passes gets a time. The backwards all start from
// _v1's forward results. It logs one table row per kernel (ms, TFLOP/s,
// speedup over _v1, registers, spilled bytes, shared memory) and, per
// direction and shape, the fastest variant next to the one d64Defaults
// names. Run it alone: go test ./internal/gpu/cuda -run AttentionThroughput -v
func TestCUDAAttentionThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	h := newHarness(t)
	g := h.g
	start, err := g.dev.NewEvent()
	if err != nil {
		t.Fatal(err)
	}
	end, _ := g.dev.NewEvent()
	defer g.dev.DestroyEvent(start)
	defer g.dev.DestroyEvent(end)
	// timeMs is the mean time of reps calls of f after one warm-up call.
	timeMs := func(reps int, f func()) float64 {
		f()
		must(g.dev.RecordEvent(start))
		for range reps {
			f()
		}
		must(g.dev.RecordEvent(end))
		ms, err := g.dev.ElapsedMs(start, end)
		if err != nil {
			t.Fatal(err)
		}
		return float64(ms) / float64(reps)
	}
	download := func(x *gpu.Tensor) []float32 {
		v, err := g.Download(x)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	a := &g.k.attention
	fwds := []*attentionFwd{&a.fwd.d64v1}
	bwds := []*attentionBwd{&a.bwd.d64v1}
	for i := range a.fwd.d64 {
		if !a.fwd.d64[i].unfit {
			fwds = append(fwds, &a.fwd.d64[i])
		}
	}
	for i := range a.bwd.d64 {
		if !a.bwd.d64[i].unfit {
			bwds = append(bwds, &a.bwd.d64[i])
		}
	}
	name := func(p *pipelined) string {
		if p.smem == 0 {
			return "v1"
		}
		return p.variant.String()
	}
	// row logs one kernel's line of the table.
	row := func(dir string, p *pipelined, ms, flop, v1ms float64) {
		regs, _ := p.fn.NumRegs()
		local, _ := p.fn.attribute(cuFuncAttrLocalSizeBytes, "LOCAL_SIZE_BYTES")
		t.Logf("  %s %-7s %8.3f ms %6.1f TFLOP/s %5.2fx v1   regs %3d spill %3d B smem %6d B",
			dir, name(p), ms, flop/ms/1e9, v1ms/ms, regs, local, p.smem)
	}

	const D = 64
	for _, c := range []struct{ B, T, H, KV int }{{64, 256, 16, 16}, {16, 1024, 16, 16}} {
		N := c.B * c.T
		qn, kn := N*c.H*D, N*c.KV*D
		// Whole tensors on the GPU; the CPU gets one sequence at a time.
		q, k, v, dout := h.randn(gpu.Low, 1, qn), h.randn(gpu.Low, 1, kn), h.randn(gpu.Low, 1, kn), h.randn(gpu.Low, 1, qn)
		out, lse := h.alloc(gpu.Low, qn), h.alloc(gpu.Full, c.B*c.H*c.T)
		refOut, refLse := h.alloc(gpu.Low, qn), h.alloc(gpu.Full, c.B*c.H*c.T)
		dq, dk, dv := h.alloc(gpu.Low, qn), h.alloc(gpu.Low, kn), h.alloc(gpu.Low, kn)
		args := func(x pair) devPtr[bf16] { return low(x.g) }
		// The backwards' forward results: _v1's.
		a.fwd.d64v1.launch(args(refOut), full(refLse.g), args(q), args(k), args(v), i32(c.B), i32(c.T), i32(c.H), i32(c.KV), D)
		hostQ, hostK, hostV, hostDout := download(q.g), download(k.g), download(v.g), download(dout.g)
		hostOut, hostLse := download(refOut.g), download(refLse.g)

		// CPU references of sequences 0 and B-1: forward from the inputs,
		// backward from _v1's forward results.
		type seqRef struct{ out, lse, dq, dk, dv []float32 }
		seqs := []int{0, c.B - 1}
		refs := make([]seqRef, len(seqs))
		qs, ks, ls := c.T*c.H*D, c.T*c.KV*D, c.H*c.T // per-sequence lengths
		for si, b := range seqs {
			cq, ck, cv := h.cpu(hostQ[b*qs:(b+1)*qs]), h.cpu(hostK[b*ks:(b+1)*ks]), h.cpu(hostV[b*ks:(b+1)*ks])
			co, cl := h.cpu(make([]float32, qs)), h.cpu(make([]float32, ls))
			h.c.Attention(co, cl, cq, ck, cv, 1, c.T, c.H, c.KV, D)
			refs[si].out, refs[si].lse = h.host(co), h.host(cl)
			cdo, go_, gl := h.cpu(hostDout[b*qs:(b+1)*qs]), h.cpu(hostOut[b*qs:(b+1)*qs]), h.cpu(hostLse[b*ls:(b+1)*ls])
			cdq, cdk, cdv := h.cpu(make([]float32, qs)), h.cpu(make([]float32, ks)), h.cpu(make([]float32, ks))
			h.c.AttentionBackward(cdq, cdk, cdv, cdo, cq, ck, cv, go_, gl, 1, c.T, c.H, c.KV, D)
			refs[si].dq, refs[si].dk, refs[si].dv = h.host(cdq), h.host(cdk), h.host(cdv)
		}
		// check compares a kernel's outputs with the CPU (per sequence) and
		// with _v1's (whole tensors) and says whether all are within tol.
		check := func(what string, got, v1 []float32, per int, ref func(seqRef) []float32, tol float64) bool {
			ok := true
			for si, b := range seqs {
				if e, _ := relErr(got[b*per:(b+1)*per], ref(refs[si])); !(e <= tol) {
					t.Errorf("B=%d T=%d %s: sequence %d vs CPU rel err %.3g > %g", c.B, c.T, what, b, e, tol)
					ok = false
				}
			}
			if v1 != nil {
				if e, _ := relErr(got, v1); !(e <= tol) {
					t.Errorf("B=%d T=%d %s: vs v1 rel err %.3g > %g", c.B, c.T, what, e, tol)
					ok = false
				}
			}
			return ok
		}

		// Causal: T(T+1)/2 query-key pairs per (b, h); 2 matmuls forward, 5
		// backward (the usual FlashAttention count, recomputation not counted).
		pairs := float64(c.B*c.H) * float64(c.T) * float64(c.T+1) / 2
		fwdFlop, bwdFlop := 4*pairs*D, 10*pairs*D
		t.Logf("B=%d T=%d H=%d KV=%d D=%d:", c.B, c.T, c.H, c.KV, D)
		var v1Out, v1Lse []float32
		fb := &timingBoard{timeMs: timeMs, row: row}
		for _, f := range fwds {
			run := func() {
				f.launch(args(out), full(lse.g), args(q), args(k), args(v), i32(c.B), i32(c.T), i32(c.H), i32(c.KV), D)
			}
			g.Zero(out.g) // a kernel that writes nothing must not pass on stale results
			run()
			o, l := download(out.g), download(lse.g)
			okO := check("fwd "+name(&f.pipelined)+" out", o, v1Out, qs, func(r seqRef) []float32 { return r.out }, tolBF16)
			okL := check("fwd "+name(&f.pipelined)+" lse", l, v1Lse, ls, func(r seqRef) []float32 { return r.lse }, 1e-4)
			if v1Out == nil {
				v1Out, v1Lse = o, l
			}
			if !okO || !okL {
				continue
			}
			fb.time("fwd", &f.pipelined, run, fwdFlop)
		}
		t.Logf("  fastest fwd at T=%d: %s (%.2fx v1); d64Defaults runs %s", c.T, fb.best.name, fb.v1ms/fb.best.ms, a.fwd.pick(D, c.T, true).variant)

		var v1dq, v1dk, v1dv []float32
		bb := &timingBoard{timeMs: timeMs, row: row}
		for _, b := range bwds {
			ps := [...]devPtr[bf16]{args(dq), args(dk), args(dv), args(dout), args(q), args(k), args(v), args(refOut)}
			run := func() { g.attentionBackward(b, ps, full(refLse.g), c.B, c.T, c.H, c.KV, D) }
			for _, x := range []pair{dq, dk, dv} {
				g.Zero(x.g)
			}
			run()
			gq, gk, gv := download(dq.g), download(dk.g), download(dv.g)
			n := "bwd " + name(&b.pipelined)
			ok := check(n+" dq", gq, v1dq, qs, func(r seqRef) []float32 { return r.dq }, 2*tolBF16)
			ok = check(n+" dk", gk, v1dk, ks, func(r seqRef) []float32 { return r.dk }, 2*tolBF16) && ok
			ok = check(n+" dv", gv, v1dv, ks, func(r seqRef) []float32 { return r.dv }, 2*tolBF16) && ok
			if v1dq == nil {
				v1dq, v1dk, v1dv = gq, gk, gv
			}
			if !ok {
				continue
			}
			bb.time("bwd", &b.pipelined, run, bwdFlop)
		}
		t.Logf("  fastest bwd (delta + main) at T=%d: %s (%.2fx v1); d64Defaults runs %s", c.T, bb.best.name, bb.v1ms/bb.best.ms, a.bwd.pick(D, c.T, true).variant)
	}
}

// cpu is a CPU tensor holding v.
func (h *harness) cpu(v []float32) *gpu.Tensor {
	h.t.Helper()
	x, err := h.c.Alloc("x", gpu.Activations, gpu.Full, len(v))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.c.Upload(x, v); err != nil {
		h.t.Fatal(err)
	}
	return x
}

// host is a CPU tensor's values.
func (h *harness) host(x *gpu.Tensor) []float32 {
	h.t.Helper()
	v, err := h.c.Download(x)
	if err != nil {
		h.t.Fatal(err)
	}
	return v
}

// expectZero checks that the GPU's x is within bound of zero everywhere.
func (h *harness) expectZero(what string, x pair, bound float64) {
	h.t.Helper()
	gv, err := h.g.Download(x.g)
	if err != nil {
		h.t.Fatal(err)
	}
	worst := 0.0
	for _, v := range gv {
		worst = math.Max(worst, math.Abs(float64(v)))
	}
	if !(worst <= bound) {
		h.t.Errorf("%s: max |x| %.3g > %g where the exact value is 0", what, worst, bound)
	}
}

// Each pipelined entry point's name states the template arguments its macro
// passes (warps, stages, min blocks), so the host's tables, which derive the
// names, block sizes and shared memory from the same numbers, launch what
// the kernel was compiled for. Runs without a GPU.
func TestAttentionVariantEntries(t *testing.T) {
	src, err := csrc.FS.ReadFile("attention.cu")
	if err != nil {
		t.Fatal(err)
	}
	entryRE := regexp.MustCompile(`(?m)^ATTN_(FWD|BWD)_ENTRY\((\w+), (\d+), (\d+), (\d+)(?:, (\d+))?\)`)
	var fwd, bwd []string
	for _, m := range entryRE.FindAllStringSubmatch(string(src), -1) {
		dir := strings.ToLower(m[1])
		want := fmt.Sprintf("attention_%s_d64_w%ss%sm%s", dir, m[3], m[4], m[5])
		if m[6] != "" {
			want += "q" + m[6]
		}
		if m[2] != want {
			t.Errorf("%s instantiates the template of %s", m[2], want)
		}
		if dir == "fwd" {
			fwd = append(fwd, m[2])
		} else {
			bwd = append(bwd, m[2])
		}
	}
	for _, c := range []struct {
		dir     string
		entries []string
		table   []d64Variant
	}{{"fwd", fwd, fwdD64Variants}, {"bwd", bwd, bwdD64Variants}} {
		var names []string
		for _, v := range c.table {
			names = append(names, "attention_"+c.dir+"_d64_"+v.String())
		}
		if !slices.Equal(names, c.entries) {
			t.Errorf("%s: attention.cu instantiates %v, the table lists %v", c.dir, c.entries, names)
		}
	}
}
