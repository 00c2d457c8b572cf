//go:build linux && (amd64 || arm64)

package cuda

// The CUDA backend against the CPU reference, op by op, on fresh random
// inputs each run (the seed is logged). Low tensors get bf16-rounded inputs
// on both sides, so differences come from the kernels alone: bf16 outputs
// are held to about 1e-2 relative, fp32 ones to about 1e-5.

import (
	"fmt"
	"github.com/compact-llm/compact/internal/gpu"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/compact-llm/compact/internal/gpu/cpu"
)

var (
	cudaOnce sync.Once
	cudaBE   *Backend
	cudaErr  error
)

func cudaOrSkip(t *testing.T) *Backend {
	t.Helper()
	cudaOnce.Do(func() { cudaBE, cudaErr = New(0) })
	if cudaErr != nil {
		t.Skipf("no usable CUDA device: %v", cudaErr)
	}
	return cudaBE
}

// harness builds the same tensors on the CPU and the GPU.
type harness struct {
	t   *testing.T
	g   *Backend
	c   *cpu.Backend[float32]
	rng *rand.Rand
}

type pair struct{ c, g *gpu.Tensor }

func newHarness(t *testing.T) *harness {
	g := cudaOrSkip(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return &harness{t: t, g: g, c: cpu.New(0), rng: rand.New(rand.NewPCG(seed, 3))}
}

func roundBF16(v float32) float32 { return floatFromBF16(bf16FromFloat(v)) }

func (h *harness) alloc(p gpu.Precision, shape ...int) pair {
	c, err := h.c.Alloc("x", gpu.Activations, p, shape...)
	if err != nil {
		h.t.Fatal(err)
	}
	g, err := h.g.Alloc("x", gpu.Activations, p, shape...)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { h.g.Free(g) })
	return pair{c, g}
}

// randn fills a new pair with N(0, scale^2) values (bf16-exact when Low).
func (h *harness) randn(p gpu.Precision, scale float64, shape ...int) pair {
	x := h.alloc(p, shape...)
	v := make([]float32, x.c.Len())
	for i := range v {
		v[i] = float32(h.rng.NormFloat64() * scale)
		if p == gpu.Low {
			v[i] = roundBF16(v[i])
		}
	}
	h.set(x, v)
	return x
}

func (h *harness) set(x pair, v []float32) {
	if err := h.c.Upload(x.c, v); err != nil {
		h.t.Fatal(err)
	}
	if err := h.g.Upload(x.g, v); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) ints(vals []int32) pair {
	x := h.alloc(gpu.Int32, len(vals))
	h.c.UploadInt32(x.c, vals)
	h.g.UploadInt32(x.g, vals)
	return x
}

// expect compares the GPU tensor with the CPU one by ||g - c|| / ||c||.
func (h *harness) expect(what string, x pair, tol float64) {
	h.t.Helper()
	cv, _ := h.c.Download(x.c)
	gv, err := h.g.Download(x.g)
	if err != nil {
		h.t.Fatal(err)
	}
	e, nan := relErr(gv, cv)
	if nan >= 0 {
		h.t.Errorf("%s: NaN at %d", what, nan)
		return
	}
	if e > tol {
		h.t.Errorf("%s: GPU vs CPU rel err %.3g > %g", what, e, tol)
	} else {
		h.t.Logf("%s: rel err %.3g", what, e)
	}
}

// relErr is ||got - want|| / ||want||, and the first index where got is
// NaN (-1 if none; the error is then +Inf).
func relErr(got, want []float32) (float64, int) {
	var num, den float64
	for i := range want {
		if math.IsNaN(float64(got[i])) {
			return math.Inf(1), i
		}
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / math.Max(den, 1e-30)), -1
}

const (
	tolBF16 = 1e-2
	tolF32  = 1e-5
)

func TestCUDAElementwise(t *testing.T) {
	h := newHarness(t)
	for _, p := range []gpu.Precision{gpu.Low, gpu.Full} {
		tol := map[gpu.Precision]float64{gpu.Low: tolBF16, gpu.Full: tolF32}[p]
		for _, op := range gpu.MapOps() { // every op of the family, new ones included
			b := h.randn(p, 1, 1001)
			h.c.Map(op, b.c, -1.7)
			h.g.Map(op, b.g, -1.7)
			h.expect(op.String(), b, tol)
		}
	}
	f := h.randn(gpu.Full, 1, 777)
	lo := h.alloc(gpu.Low, 777)
	h.c.Copy(lo.c, f.c)
	h.g.Copy(lo.g, f.g)
	h.expect("copy f32->bf16", lo, tolBF16)
	back := h.alloc(gpu.Full, 777)
	h.c.Copy(back.c, lo.c)
	h.g.Copy(back.g, lo.g)
	h.expect("copy bf16->f32", back, tolBF16)
}

func TestCUDAGemm(t *testing.T) {
	h := newHarness(t)
	M, N, K := 67, 45, 96
	for _, combo := range []struct {
		a, c gpu.Precision
		tol  float64
	}{{gpu.Low, gpu.Low, tolBF16}, {gpu.Low, gpu.Full, 1e-3}, {gpu.Full, gpu.Full, tolF32}} {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				ash, bsh := []int{M, K}, []int{K, N}
				if ta {
					ash = []int{K, M}
				}
				if tb {
					bsh = []int{N, K}
				}
				a, b := h.randn(combo.a, 1, ash...), h.randn(combo.a, 1, bsh...)
				c := h.randn(combo.c, 1, M, N)
				h.c.Gemm(c.c, a.c, b.c, ta, tb, 0.5, 1)
				h.g.Gemm(c.g, a.g, b.g, ta, tb, 0.5, 1)
				h.expect("gemm", c, combo.tol)
			}
		}
	}
}

func TestCUDAModelOps(t *testing.T) {
	h := newHarness(t)
	B, T, V, C := 2, 37, 50, 96
	N := B * T
	toks := make([]int32, N)
	for i := range toks {
		toks[i] = int32(h.rng.IntN(V))
	}
	tokens := h.ints(toks)
	wte, out := h.randn(gpu.Low, 1, V, C), h.alloc(gpu.Low, N, C)
	h.c.Embedding(out.c, wte.c, tokens.c)
	h.g.Embedding(out.g, wte.g, tokens.g)
	h.expect("embedding", out, 0)
	dwte, dout := h.randn(gpu.Full, 1, V, C), h.randn(gpu.Low, 1, N, C)
	h.c.EmbeddingBackward(dwte.c, dout.c, tokens.c)
	h.g.EmbeddingBackward(dwte.g, dout.g, tokens.g)
	h.expect("embedding backward", dwte, tolF32)

	// C = 768 has more columns than one block of rmsnorm_bwd_dw_finish.
	for _, C := range []int{C, 768} {
		x, w, dout := h.randn(gpu.Low, 1, N, C), h.randn(gpu.Low, 1, C), h.randn(gpu.Low, 1, N, C)
		y, rstd := h.alloc(gpu.Low, N, C), h.alloc(gpu.Full, N)
		h.c.RMSNorm(y.c, rstd.c, x.c, w.c, 1e-6)
		h.g.RMSNorm(y.g, rstd.g, x.g, w.g, 1e-6)
		h.expect("rmsnorm", y, tolBF16)
		h.expect("rmsnorm rstd", rstd, tolF32)
		dx, dw := h.randn(gpu.Low, 1, N, C), h.randn(gpu.Full, 1, C)
		h.c.RMSNormBackward(dx.c, dw.c, dout.c, x.c, w.c, rstd.c)
		h.g.RMSNormBackward(dx.g, dw.g, dout.g, x.g, w.g, rstd.g)
		h.expect(fmt.Sprintf("rmsnorm dx C=%d", C), dx, tolBF16)
		h.expect(fmt.Sprintf("rmsnorm dw C=%d", C), dw, tolF32)
	}

	// D 32/64/128 run rope_rows (with N not a multiple of its 8 rows when N
	// is odd), D 12 the one-pair kernel.
	for _, D := range []int{32, 64, 128, 12} {
		for _, heads := range []int{2, 3} {
			q := h.randn(gpu.Low, 1, N, heads*D)
			h.c.RoPE(q.c, T, heads, D, 10000, false)
			h.g.RoPE(q.g, T, heads, D, 10000, false)
			h.expect(fmt.Sprintf("rope D=%d heads=%d", D, heads), q, tolBF16)
			h.c.RoPE(q.c, T, heads, D, 10000, true)
			h.g.RoPE(q.g, T, heads, D, 10000, true)
			h.expect(fmt.Sprintf("rope inverse D=%d heads=%d", D, heads), q, tolBF16)
		}
	}

	F := 130
	gate, up, act := h.randn(gpu.Low, 2, N, F), h.randn(gpu.Low, 1, N, F), h.alloc(gpu.Low, N, F)
	h.c.SwiGLU(act.c, gate.c, up.c)
	h.g.SwiGLU(act.g, gate.g, up.g)
	h.expect("swiglu", act, tolBF16)
	da := h.randn(gpu.Low, 1, N, F)
	h.c.SwiGLUBackward(gate.c, up.c, da.c, gate.c, up.c)
	h.g.SwiGLUBackward(gate.g, up.g, da.g, gate.g, up.g)
	h.expect("swiglu dgate (in place)", gate, tolBF16)
	h.expect("swiglu dup (in place)", up, tolBF16)

	logits, losses := h.randn(gpu.Low, 3, N, V), h.alloc(gpu.Full, N)
	tg := make([]int32, N)
	for i := range tg {
		tg[i] = int32(h.rng.IntN(V))
	}
	tg[4] = -1
	targets := h.ints(tg)
	h.c.CrossEntropy(losses.c, logits.c, targets.c, true, 1.0/float32(N))
	h.g.CrossEntropy(losses.g, logits.g, targets.g, true, 1.0/float32(N))
	h.expect("cross-entropy losses", losses, 1e-5)
	h.expect("cross-entropy dlogits", logits, tolBF16)
}

func TestCUDAOptimizerOps(t *testing.T) {
	h := newHarness(t)
	n := 3001
	p, g := h.randn(gpu.Full, 1, n), h.randn(gpu.Full, 0.1, n)
	m, v := h.randn(gpu.Full, 0.01, n), h.alloc(gpu.Full, n)
	vv := make([]float32, n)
	for i := range vv {
		vv[i] = float32(h.rng.Float64() * 1e-3)
	}
	h.set(v, vv)
	acc, clip := h.alloc(gpu.Full, 1), h.alloc(gpu.Full, 1)
	h.c.SumSquares(acc.c, g.c, p.c)
	h.g.SumSquares(acc.g, g.g, p.g)
	h.expect("sum of squares", acc, 1e-6)
	h.c.ClipScale(clip.c, acc.c, 1)
	h.g.ClipScale(clip.g, acc.g, 1)
	h.expect("clip scale", clip, 1e-6)
	// Both Adam forms (torch, then HF); eps 1e-6 as the HF recipe uses.
	for _, form := range []gpu.AdamForm{gpu.AdamTorch, gpu.AdamHF} {
		hp := gpu.AdamParams{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-6, WeightDecay: 0.1, Scale: 0.25, Step: 3, Form: form}
		name := fmt.Sprintf("form %d: ", form)
		adamW(h.c, p.c, g.c, m.c, v.c, clip.c, hp)
		adamW(h.g, p.g, g.g, m.g, v.g, clip.g, hp)
		h.expect(name+"adamw p", p, tolF32)
		h.expect(name+"adamw m", m, tolF32)
		h.expect(name+"adamw v", v, tolF32)
		dir := h.alloc(gpu.Full, n)
		adamDirection(h.c, dir.c, g.c, m.c, v.c, clip.c, hp)
		adamDirection(h.g, dir.g, g.g, m.g, v.g, clip.g, hp)
		h.expect(name+"adam direction", dir, 1e-4)
	}
	for _, prec := range []gpu.Precision{gpu.Full, gpu.Low} {
		for _, kind := range []gpu.ProjectionKind{gpu.Gaussian, gpu.Rademacher} {
			// Unpadded (rank 0: P's width), and stored wider than the rank
			// over a buffer full of junk: the padding must come back zero.
			for _, c := range []struct{ rank, cols int }{{0, 33}, {33, 40}, {1365, 1368}} {
				P := h.randn(prec, 1, 517, c.cols)
				s := gpu.ProjectionStream{Seed: h.rng.Uint64(), Stream: 17, Epoch: 4, Kind: kind, Rank: c.rank}
				h.c.Projection(P.c, s)
				h.g.Projection(P.g, s)
				tol := map[gpu.Precision]float64{gpu.Low: 5e-3, gpu.Full: 1e-6}[prec]
				h.expect(fmt.Sprintf("projection rank %d cols %d", c.rank, c.cols), P, tol)
				if c.rank == 0 {
					continue
				}
				// The GPU's own unpadded P, bit for bit, then zeros.
				Q := h.alloc(prec, 517, c.rank)
				h.g.Projection(Q.g, s)
				gv, err := h.g.Download(P.g)
				if err != nil {
					t.Fatal(err)
				}
				qv, err := h.g.Download(Q.g)
				if err != nil {
					t.Fatal(err)
				}
				for i := range 517 {
					for j := range c.cols {
						want := float32(0)
						if j < c.rank {
							want = qv[i*c.rank+j]
						}
						if v := gv[i*c.cols+j]; v != want {
							t.Fatalf("projection rank %d cols %d: P[%d,%d] = %g, want %g", c.rank, c.cols, i, j, v, want)
						}
					}
				}
			}
		}
	}
}

func TestCUDADecodeOps(t *testing.T) {
	h := newHarness(t)
	for _, heads := range []int{3, 4} {
		x := h.randn(gpu.Low, 1, 5, heads*64)
		h.c.RoPEAt(x.c, 37, heads, 64, 10000)
		h.g.RoPEAt(x.g, 37, heads, 64, 10000)
		h.expect("rope at position", x, tolBF16)
	}
	for _, c := range []struct{ B, t, H, KV, D int }{{2, 45, 4, 2, 64}, {1, 1, 2, 2, 128}, {3, 130, 6, 1, 64}} {
		maxT := c.t + 5
		q := h.randn(gpu.Low, 1, c.B, c.H*c.D)
		kc, vc := h.randn(gpu.Low, 1, maxT*c.B, c.KV*c.D), h.randn(gpu.Low, 1, maxT*c.B, c.KV*c.D)
		out := h.alloc(gpu.Low, c.B, c.H*c.D)
		h.c.AttentionDecode(out.c, q.c, kc.c, vc.c, c.B, c.t, c.H, c.KV, c.D)
		h.g.AttentionDecode(out.g, q.g, kc.g, vc.g, c.B, c.t, c.H, c.KV, c.D)
		h.expect("attention decode", out, tolBF16)
	}
}

// UploadInt32 returns before its copy runs: each upload must still land in
// stream order with its own values, even when the host reuses its slice at
// once and runs more uploads ahead than there are staging buffers, and a
// larger upload after smaller ones must grow the staging.
func TestCUDAUploadInt32IsAsyncAndOrdered(t *testing.T) {
	g := cudaOrSkip(t)
	const rounds = 3*stagingSlots + 1
	src, err := g.Alloc("tokens", gpu.Activations, gpu.Int32, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free(src)
	var dsts []*gpu.Tensor
	host := make([]int32, src.Len())
	for i := range rounds {
		n := 1000 + i*(src.Len()-1000)/rounds // growing uploads
		for j := range host[:n] {
			host[j] = int32(i*1_000_003 + j)
		}
		if err := g.UploadInt32(src.Rows(0, n), host[:n]); err != nil {
			t.Fatal(err)
		}
		clear(host) // the backend must have taken its own copy
		d, err := g.Alloc("copy", gpu.Activations, gpu.Int32, n)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Free(d)
		if err := g.Copy(d, src.Rows(0, n)); err != nil {
			t.Fatal(err)
		}
		dsts = append(dsts, d)
	}
	for i, d := range dsts {
		got, err := g.Download(d)
		if err != nil {
			t.Fatal(err)
		}
		for j, v := range got {
			if want := float32(int32(i*1_000_003 + j)); v != want {
				t.Fatalf("upload %d: element %d = %v, want %v", i, j, v, want)
			}
		}
	}
}
