//go:build linux && (amd64 || arm64)

package cuda

import (
	"math"
	"math/rand/v2"
	"testing"

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
// aligned tensors, plus, for D = 64, the unpipelined _v1 pair (what it picks
// for unaligned tensors).
func attentionVariants(g *Backend, D int) []attentionVariant {
	a := &g.k.attention
	vs := []attentionVariant{{"picked", a.fwd.pick(D, true), a.bwd.pick(D, true)}}
	if D == 64 {
		vs = append(vs, attentionVariant{"d64_v1", &a.fwd.d64v1, &a.bwd.d64v1})
	}
	return vs
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
// (generic), 64 (pipelined and _v1), 128, grouped-query heads (KV < H).
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
			h.expect("attention dq", dq, 2*tolBF16)
			h.expect("attention dk", dk, 2*tolBF16)
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

// TestCUDAAttentionThroughput logs forward and backward TFLOP/s of every D =
// 64 kernel pair at the llama-350m shape and at T = 1024, and checks that the
// pairs agree with each other there (the CPU is too slow for these shapes).
// Run it alone: go test ./internal/gpu/cuda -run AttentionThroughput -v
func TestCUDAAttentionThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	g := cudaOrSkip(t)
	rng := rand.New(rand.NewPCG(1, 2))
	alloc := func(p gpu.Precision, n int, random bool) *gpu.Tensor {
		x, err := g.Alloc("x", gpu.Activations, p, n)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Free(x) })
		v := make([]float32, n)
		if random {
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
		}
		if err := g.Upload(x, v); err != nil {
			t.Fatal(err)
		}
		return x
	}
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
	for _, c := range []struct{ B, T, H, KV, D int }{{64, 256, 16, 16, 64}, {16, 1024, 16, 16, 64}} {
		N := c.B * c.T
		q, k, v, dout := alloc(gpu.Low, N*c.H*c.D, true), alloc(gpu.Low, N*c.KV*c.D, true),
			alloc(gpu.Low, N*c.KV*c.D, true), alloc(gpu.Low, N*c.H*c.D, true)
		// Causal: T(T+1)/2 query-key pairs per (b, h); 2 matmuls forward, 5
		// backward (the usual FlashAttention count, recomputation not counted).
		pairs := float64(c.B*c.H) * float64(c.T) * float64(c.T+1) / 2
		fwdFlop, bwdFlop := 4*pairs*float64(c.D), 10*pairs*float64(c.D)
		var results [][][]float32 // per variant: out, lse, dq, dk, dv
		for _, vr := range attentionVariants(g, c.D) {
			out, lse := alloc(gpu.Low, N*c.H*c.D, false), alloc(gpu.Full, c.B*c.H*c.T, false)
			dq, dk, dv := alloc(gpu.Low, N*c.H*c.D, false), alloc(gpu.Low, N*c.KV*c.D, false), alloc(gpu.Low, N*c.KV*c.D, false)
			fwd := timeMs(10, func() { vr.forward(out, lse, q, k, v, c.B, c.T, c.H, c.KV, c.D) })
			bwd := timeMs(10, func() { vr.backward(g, dq, dk, dv, dout, q, k, v, out, lse, c.B, c.T, c.H, c.KV, c.D) })
			t.Logf("B=%d T=%d H=%d D=%d %-8s fwd %.3f ms %.1f TFLOP/s, bwd (delta + main) %.3f ms %.1f TFLOP/s",
				c.B, c.T, c.H, c.D, vr.name, fwd, fwdFlop/fwd/1e9, bwd, bwdFlop/bwd/1e9)
			var r [][]float32
			for _, x := range []*gpu.Tensor{out, lse, dq, dk, dv} {
				d, err := g.Download(x)
				if err != nil {
					t.Fatal(err)
				}
				r = append(r, d)
			}
			results = append(results, r)
		}
		for i := 1; i < len(results); i++ {
			for ti, name := range []string{"out", "lse", "dq", "dk", "dv"} {
				a, b := results[0][ti], results[i][ti]
				var num, den float64
				for j := range a {
					if math.IsNaN(float64(a[j])) || math.IsNaN(float64(b[j])) {
						t.Fatalf("B=%d T=%d %s: NaN at %d", c.B, c.T, name, j)
					}
					d := float64(a[j] - b[j])
					num += d * d
					den += float64(a[j]) * float64(a[j])
				}
				if e := math.Sqrt(num / den); e > tolBF16 {
					t.Errorf("B=%d T=%d %s: variants 0 and %d differ, rel err %.3g", c.B, c.T, name, i, e)
				} else {
					t.Logf("B=%d T=%d %s: variants 0 and %d agree, rel err %.3g", c.B, c.T, name, i, e)
				}
			}
		}
	}
}
