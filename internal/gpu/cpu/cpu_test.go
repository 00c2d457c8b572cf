// Tests of the CPU backend: analytic gradients of every op against float64
// central finite differences, forward results against naive references,
// float32 against float64, accumulate/overwrite semantics, the optimizer ops
// against scalar loops, and bit-identical reruns.
package cpu

import (
	"fmt"
	"github.com/compact-llm/compact/internal/gpu"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/compact-llm/compact/internal/projection"
)

// ---- helpers ----

// ref64 is the gradient-check backend; splitAll makes even tiny shapes run
// through the chunked parallel paths.
func ref64() *Backend[float64] {
	b := New64(3)
	b.splitAll = true
	return b
}

func randn(r *rand.Rand, n int, scale float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = r.NormFloat64() * scale
	}
	return x
}

func mk(t testing.TB, b gpu.Backend, name string, data []float64, shape ...int) *gpu.Tensor {
	t.Helper()
	x, err := b.Alloc(name, gpu.Activations, gpu.Low, shape...)
	if err != nil {
		t.Fatal(err)
	}
	if data != nil {
		set(t, b, x, data)
	}
	return x
}

// set uploads float64 values, exactly on the float64 backend.
func set(t testing.TB, b gpu.Backend, x *gpu.Tensor, data []float64) {
	t.Helper()
	if err := UploadF64(b, x, data); err != nil {
		t.Fatal(err)
	}
}

// add sets out = a + b through the host: the backends have no add kernel,
// the model needs none.
func add(t testing.TB, be gpu.Backend, out, a, b *gpu.Tensor) {
	t.Helper()
	x, y := get(t, be, a), get(t, be, b)
	for i := range x {
		x[i] += y[i]
	}
	set(t, be, out, x)
}

// mkFull is a zeroed Full tensor: fp32 Adam moments (Low ones are bf16).
func mkFull(t testing.TB, b gpu.Backend, name string, shape ...int) *gpu.Tensor {
	t.Helper()
	x, err := b.Alloc(name, gpu.Optimizer, gpu.Full, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func mkInts(t testing.TB, b gpu.Backend, name string, data []int32) *gpu.Tensor {
	t.Helper()
	x, err := b.Alloc(name, gpu.Activations, gpu.Int32, len(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.UploadInt32(x, data); err != nil {
		t.Fatal(err)
	}
	return x
}

func get(t testing.TB, b gpu.Backend, x *gpu.Tensor) []float64 {
	t.Helper()
	d, err := b.DownloadF64(x)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func norm(a []float64) float64 {
	var s float64
	for _, x := range a {
		s += x * x
	}
	return math.Sqrt(s)
}

// relErr is ||a - want|| / ||want|| (absolute when want is zero).
func relErr(a, want []float64) float64 {
	if len(a) != len(want) {
		return math.Inf(1)
	}
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - want[i]
	}
	if n := norm(want); n > 0 {
		return norm(d) / n
	}
	return norm(d)
}

func sub(a, b []float64) []float64 {
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	return d
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// numGrad is the central finite difference of loss with respect to x, which
// must be the live storage of an input tensor.
func numGrad(x []float64, loss func() float64) []float64 {
	const h = 1e-5
	g := make([]float64, len(x))
	for i := range x {
		x0 := x[i]
		x[i] = x0 + h
		lp := loss()
		x[i] = x0 - h
		lm := loss()
		x[i] = x0
		g[i] = (lp - lm) / (2 * h)
	}
	return g
}

const gradTol = 1e-6

func expectGrad(t *testing.T, what string, analytic, fd []float64) {
	t.Helper()
	e := relErr(analytic, fd)
	t.Logf("%s: gradient rel error %.2g", what, e)
	if !(e < gradTol) {
		t.Errorf("%s: gradient rel error %.3g (>= %g)", what, e, gradTol)
	}
}

func expectClose(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if e := relErr(got, want); !(e < tol) {
		t.Errorf("%s: rel error %.3g (>= %g)", what, e, tol)
	}
}

// ---- gradient checks (CPU64 against finite differences) ----

func TestGradEmbedding(t *testing.T) {
	b, r := ref64(), rand.New(rand.NewPCG(1, 1))
	V, C := 7, 8
	tokIDs := []int32{3, 0, 6, 3, 3, 1, 0, 5, 2, 3}
	N := len(tokIDs)
	wte := mk(t, b, "wte", randn(r, V*C, 1), V, C)
	tok := mkInts(t, b, "tok", tokIDs)
	out := mk(t, b, "out", nil, N, C)
	R := randn(r, N*C, 1)
	loss := func() float64 { b.Embedding(out, wte, tok); return dot(b.f(out), R) }
	loss()
	for n, id := range tokIDs {
		if relErr(b.f(out)[n*C:(n+1)*C], b.f(wte)[int(id)*C:][:C]) != 0 {
			t.Fatalf("row %d is not wte[%d]", n, id)
		}
	}
	base := randn(r, V*C, 1)
	dwte := mk(t, b, "dwte", base, V, C)
	b.EmbeddingBackward(dwte, mk(t, b, "dout", R, N, C), tok)
	expectGrad(t, "dwte (accumulated)", sub(b.f(dwte), base), numGrad(b.f(wte), loss))
}

// rmsNaive is the direct definition of RMSNorm.
func rmsNaive(x, w []float64, eps float64) (out, rstd []float64) {
	C := len(w)
	N := len(x) / C
	out, rstd = make([]float64, N*C), make([]float64, N)
	for n := 0; n < N; n++ {
		var ms float64
		for c := 0; c < C; c++ {
			ms += x[n*C+c] * x[n*C+c] / float64(C)
		}
		rstd[n] = 1 / math.Sqrt(ms+eps)
		for c := 0; c < C; c++ {
			out[n*C+c] = x[n*C+c] * rstd[n] * w[c]
		}
	}
	return
}

func TestGradRMSNorm(t *testing.T) {
	b, r := ref64(), rand.New(rand.NewPCG(2, 1))
	N, C := 10, 8
	const eps = 1e-5
	wdata := randn(r, C, 0.2)
	for i := range wdata {
		wdata[i]++
	}
	x := mk(t, b, "x", randn(r, N*C, 1), N, C)
	w := mk(t, b, "w", wdata, C)
	out, rstd := mk(t, b, "out", nil, N, C), mk(t, b, "rstd", nil, N)
	R := randn(r, N*C, 1)
	loss := func() float64 { b.RMSNorm(out, nil, x, w, eps); return dot(b.f(out), R) }
	b.RMSNorm(out, rstd, x, w, eps)
	wantOut, wantRstd := rmsNaive(b.f(x), b.f(w), float64(float32(eps)))
	expectClose(t, "RMSNorm out vs naive", b.f(out), wantOut, 1e-14)
	expectClose(t, "RMSNorm rstd vs naive", b.f(rstd), wantRstd, 1e-14)

	baseX, baseW := randn(r, N*C, 1), randn(r, C, 1)
	dx, dw := mk(t, b, "dx", baseX, N, C), mk(t, b, "dw", baseW, C)
	b.RMSNormBackward(dx, dw, mk(t, b, "dout", R, N, C), x, w, rstd)
	expectGrad(t, "RMSNorm dx (accumulated)", sub(b.f(dx), baseX), numGrad(b.f(x), loss))
	expectGrad(t, "RMSNorm dw (accumulated)", sub(b.f(dw), baseW), numGrad(b.f(w), loss))
}

// gemmNaive computes alpha op(a) op(b) + beta c0 directly.
func gemmNaive(a, bm, c0 []float64, M, N, K int, tA, tB bool, alpha, beta float64) []float64 {
	out := make([]float64, M*N)
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			var s float64
			for k := 0; k < K; k++ {
				av, bv := a[i*K+k], bm[k*N+j]
				if tA {
					av = a[k*M+i]
				}
				if tB {
					bv = bm[j*K+k]
				}
				s += av * bv
			}
			out[i*N+j] = alpha*s + beta*c0[i*N+j]
		}
	}
	return out
}

func TestGradGemm(t *testing.T) {
	b, r := ref64(), rand.New(rand.NewPCG(3, 1))
	M, N, K := 5, 6, 7
	alpha, beta := float32(0.7), float32(0.3)
	for _, tc := range []struct{ tA, tB bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		aShape, bShape := []int{M, K}, []int{K, N}
		if tc.tA {
			aShape = []int{K, M}
		}
		if tc.tB {
			bShape = []int{N, K}
		}
		a := mk(t, b, "a", randn(r, M*K, 1), aShape...)
		bm := mk(t, b, "b", randn(r, K*N, 1), bShape...)
		c0 := randn(r, M*N, 1)
		c := mk(t, b, "c", nil, M, N)
		R := randn(r, M*N, 1)
		loss := func() float64 {
			copy(b.f(c), c0)
			b.Gemm(c, a, bm, tc.tA, tc.tB, alpha, beta)
			return dot(b.f(c), R)
		}
		loss()
		name := map[[2]bool]string{{false, false}: "NN", {true, false}: "TN", {false, true}: "NT", {true, true}: "TT"}[[2]bool{tc.tA, tc.tB}]
		expectClose(t, name+" forward vs naive", b.f(c),
			gemmNaive(b.f(a), b.f(bm), c0, M, N, K, tc.tA, tc.tB, float64(alpha), float64(beta)), 1e-14)

		// The gradients use the other transpose combinations, as the model's
		// backward does.
		dc := mk(t, b, "dc", R, M, N)
		da, db := mk(t, b, "da", nil, aShape...), mk(t, b, "db", nil, bShape...)
		switch {
		case !tc.tA && !tc.tB: // c = a b
			b.Gemm(da, dc, bm, false, true, alpha, 0)
			b.Gemm(db, a, dc, true, false, alpha, 0)
		case tc.tA && !tc.tB: // c = a^T b
			b.Gemm(da, bm, dc, false, true, alpha, 0)
			b.Gemm(db, a, dc, false, false, alpha, 0)
		case !tc.tA && tc.tB: // c = a b^T
			b.Gemm(da, dc, bm, false, false, alpha, 0)
			b.Gemm(db, dc, a, true, false, alpha, 0)
		default: // c = a^T b^T
			b.Gemm(da, bm, dc, true, true, alpha, 0)
			b.Gemm(db, dc, a, true, true, alpha, 0)
		}
		expectGrad(t, name+" da", b.f(da), numGrad(b.f(a), loss))
		expectGrad(t, name+" db", b.f(db), numGrad(b.f(bm), loss))
	}
}

func TestGemmBetaZeroAndFlatten(t *testing.T) {
	b, r := ref64(), rand.New(rand.NewPCG(4, 1))
	// beta = 0 must ignore NaN in c; a (2,3,K) activation is the (6,K) matrix.
	a := mk(t, b, "a", randn(r, 6*4, 1), 2, 3, 4)
	w := mk(t, b, "w", randn(r, 5*4, 1), 5, 4)
	c := mk(t, b, "c", nil, 2, 3, 5)
	for i := range b.f(c) {
		b.f(c)[i] = math.NaN()
	}
	b.Gemm(c, a, w, false, true, 1, 0)
	expectClose(t, "flattened a w^T", b.f(c), gemmNaive(b.f(a), b.f(w), make([]float64, 30), 6, 5, 4, false, true, 1, 0), 1e-14)
}

// ropeNaive rotates by pos * theta^(-2i/D) in float64.
func ropeNaive(x []float64, T, heads, D int, theta float64, inverse bool) []float64 {
	out := append([]float64(nil), x...)
	W := heads * D
	for n := 0; n < len(x)/W; n++ {
		for h := 0; h < heads; h++ {
			for i := 0; i < D/2; i++ {
				ang := float64(n%T) * math.Pow(theta, -float64(2*i)/float64(D))
				if inverse {
					ang = -ang
				}
				o := n*W + h*D + i
				x1, x2 := x[o], x[o+D/2]
				out[o] = x1*math.Cos(ang) - x2*math.Sin(ang)
				out[o+D/2] = x2*math.Cos(ang) + x1*math.Sin(ang)
			}
		}
	}
	return out
}

func TestGradRoPE(t *testing.T) {
	b, r := ref64(), rand.New(rand.NewPCG(5, 1))
	B, T, heads, D := 2, 5, 3, 8
	const theta = 10000
	N := B * T
	x := mk(t, b, "x", randn(r, N*heads*D, 1), N, heads*D)
	y := mk(t, b, "y", nil, N, heads*D)
	R := randn(r, N*heads*D, 1)
	loss := func() float64 {
		copy(b.f(y), b.f(x))
		b.RoPE(y, T, heads, D, theta, false)
		return dot(b.f(y), R)
	}
	loss()
	expectClose(t, "RoPE vs naive", b.f(y), ropeNaive(b.f(x), T, heads, D, theta, false), 1e-14)
	b.RoPE(y, T, heads, D, theta, true)
	expectClose(t, "RoPE then inverse", b.f(y), b.f(x), 1e-14)

	dx := mk(t, b, "dx", R, N, heads*D)
	b.RoPE(dx, T, heads, D, theta, true)
	expectGrad(t, "RoPE dx", b.f(dx), numGrad(b.f(x), loss))

	// float32: inverse undoes the forward to rounding.
	b32 := New(2)
	x32 := mk(t, b32, "x", get(t, b, x), N, heads*D)
	b32.RoPE(x32, T, heads, D, theta, false)
	expectClose(t, "RoPE float32 vs float64", get(t, b32, x32), ropeNaive(get(t, b, x), T, heads, D, theta, false), 1e-6)
	b32.RoPE(x32, T, heads, D, theta, true)
	expectClose(t, "RoPE float32 inverse", get(t, b32, x32), get(t, b, x), 1e-6)
}

// attnNaive is causal GQA attention with a full T x T softmax.
func attnNaive(q, k, v []float64, B, T, H, KV, D int) (out, lse []float64) {
	out, lse = make([]float64, B*T*H*D), make([]float64, B*H*T)
	scale := 1 / math.Sqrt(float64(D))
	for b := 0; b < B; b++ {
		for h := 0; h < H; h++ {
			kvh := h / (H / KV)
			S := make([][]float64, T)
			for t := 0; t < T; t++ {
				S[t] = make([]float64, T)
				for j := 0; j < T; j++ {
					S[t][j] = math.Inf(-1)
					if j <= t {
						var s float64
						for d := 0; d < D; d++ {
							s += q[(b*T+t)*H*D+h*D+d] * k[(b*T+j)*KV*D+kvh*D+d]
						}
						S[t][j] = s * scale
					}
				}
				var z float64
				for j := 0; j < T; j++ {
					z += math.Exp(S[t][j])
				}
				lse[(b*H+h)*T+t] = math.Log(z)
				for j := 0; j < T; j++ {
					p := math.Exp(S[t][j]) / z
					for d := 0; d < D; d++ {
						out[(b*T+t)*H*D+h*D+d] += p * v[(b*T+j)*KV*D+kvh*D+d]
					}
				}
			}
		}
	}
	return
}

func TestGradAttention(t *testing.T) {
	for i, sh := range []struct{ B, T, H, KV, D int }{
		{2, 5, 4, 2, 8}, // grouped
		{2, 5, 2, 2, 8}, // H = KV
		{1, 6, 4, 1, 4}, // multi-query
	} {
		b, r := ref64(), rand.New(rand.NewPCG(6, uint64(i)))
		B, T, H, KV, D := sh.B, sh.T, sh.H, sh.KV, sh.D
		N := B * T
		q := mk(t, b, "q", randn(r, N*H*D, 1), N, H*D)
		k := mk(t, b, "k", randn(r, N*KV*D, 1), N, KV*D)
		v := mk(t, b, "v", randn(r, N*KV*D, 1), N, KV*D)
		out, lse := mk(t, b, "out", nil, N, H*D), mk(t, b, "lse", nil, B*H*T)
		R := randn(r, N*H*D, 1)
		loss := func() float64 { b.Attention(out, lse, q, k, v, B, T, H, KV, D); return dot(b.f(out), R) }
		loss()
		wantOut, wantLse := attnNaive(b.f(q), b.f(k), b.f(v), B, T, H, KV, D)
		expectClose(t, "attention out vs naive", b.f(out), wantOut, 1e-13)
		expectClose(t, "attention lse vs naive", b.f(lse), wantLse, 1e-13)

		// Garbage in dq, dk, dv checks that the backward overwrites them.
		dq := mk(t, b, "dq", randn(r, N*H*D, 1), N, H*D)
		dk := mk(t, b, "dk", randn(r, N*KV*D, 1), N, KV*D)
		dv := mk(t, b, "dv", randn(r, N*KV*D, 1), N, KV*D)
		b.AttentionBackward(dq, dk, dv, mk(t, b, "dout", R, N, H*D), q, k, v, out, lse, B, T, H, KV, D)
		expectGrad(t, "attention dq", b.f(dq), numGrad(b.f(q), loss))
		expectGrad(t, "attention dk", b.f(dk), numGrad(b.f(k), loss))
		expectGrad(t, "attention dv", b.f(dv), numGrad(b.f(v), loss))
	}
}

func TestGradSwiGLU(t *testing.T) {
	b, r := ref64(), rand.New(rand.NewPCG(7, 1))
	N, F := 6, 7
	gate := mk(t, b, "gate", randn(r, N*F, 2), N, F)
	up := mk(t, b, "up", randn(r, N*F, 1), N, F)
	out := mk(t, b, "out", nil, N, F)
	R := randn(r, N*F, 1)
	loss := func() float64 { b.SwiGLU(out, gate, up); return dot(b.f(out), R) }
	loss()
	for i, g := range b.f(gate) {
		if want := g / (1 + math.Exp(-g)) * b.f(up)[i]; math.Abs(b.f(out)[i]-want) > 1e-15*(1+math.Abs(want)) {
			t.Fatalf("SwiGLU[%d] = %g, want %g", i, b.f(out)[i], want)
		}
	}
	dout := mk(t, b, "dout", R, N, F)
	dg, du := mk(t, b, "dg", randn(r, N*F, 1), N, F), mk(t, b, "du", randn(r, N*F, 1), N, F)
	b.SwiGLUBackward(dg, du, dout, gate, up)
	expectGrad(t, "SwiGLU dgate", b.f(dg), numGrad(b.f(gate), loss))
	expectGrad(t, "SwiGLU dup", b.f(du), numGrad(b.f(up), loss))

	// In place: dgate, dup aliasing gate, up gives the same bits.
	g2, u2 := mk(t, b, "g2", b.f(gate), N, F), mk(t, b, "u2", b.f(up), N, F)
	b.SwiGLUBackward(g2, u2, dout, g2, u2)
	if relErr(b.f(g2), b.f(dg)) != 0 || relErr(b.f(u2), b.f(du)) != 0 {
		t.Error("in-place SwiGLUBackward differs from out-of-place")
	}
}

func TestGradCrossEntropy(t *testing.T) {
	b, r := ref64(), rand.New(rand.NewPCG(8, 1))
	n, V := 6, 9
	const gs = 0.37
	tg := []int32{3, -1, 0, 8, 5, -100}
	logits := mk(t, b, "logits", randn(r, n*V, 2), n, V)
	targets := mkInts(t, b, "targets", tg)
	losses := mk(t, b, "losses", nil, n)
	work := mk(t, b, "work", nil, n, V)
	loss := func() float64 {
		copy(b.f(work), b.f(logits))
		b.CrossEntropy(losses, work, targets, false, 0)
		var s float64
		for _, l := range b.f(losses) {
			s += gs * l
		}
		return s
	}
	loss()
	if relErr(b.f(work), b.f(logits)) != 0 {
		t.Error("CrossEntropy without grad changed the logits")
	}
	for i, y := range tg {
		row := b.f(logits)[i*V:][:V]
		want := 0.0
		if y >= 0 {
			var z float64
			for _, x := range row {
				z += math.Exp(x)
			}
			want = math.Log(z) - row[y]
		}
		if math.Abs(b.f(losses)[i]-want) > 1e-14 {
			t.Errorf("loss[%d] = %g, want %g", i, b.f(losses)[i], want)
		}
	}
	copy(b.f(work), b.f(logits))
	b.CrossEntropy(losses, work, targets, true, gs)
	dlogits := append([]float64(nil), b.f(work)...)
	for _, i := range []int{1, 5} {
		if norm(dlogits[i*V:][:V]) != 0 || b.f(losses)[i] != 0 {
			t.Errorf("ignored row %d has a loss or a gradient", i)
		}
	}
	expectGrad(t, "CrossEntropy dlogits", dlogits, numGrad(b.f(logits), loss))

	// Stability: a large offset changes nothing.
	want := append([]float64(nil), b.f(losses)...)
	for i := range b.f(work) {
		b.f(work)[i] = b.f(logits)[i] + 1000
	}
	b.CrossEntropy(losses, work, targets, false, 0)
	expectClose(t, "CrossEntropy with +1000 offset", b.f(losses), want, 1e-12)
}

// ---- float32 against float64, determinism ----

// pipeline runs every op of the backend forward and backward through a
// one-block model and returns every result. It uses only the Backend
// interface, so any backend can be compared with the CPU.
func pipeline(t testing.TB, b gpu.Backend, seed uint64) map[string][]float64 {
	r := rand.New(rand.NewPCG(seed, 9))
	B, T, H, KV, D, F, V := 2, 16, 4, 2, 8, 48, 50
	C, N := H*D, B*T
	s := 1 / math.Sqrt(float64(C))
	toks, tgts := make([]int32, N), make([]int32, N)
	for i := range toks {
		toks[i], tgts[i] = int32(r.IntN(V)), int32(r.IntN(V))
	}
	tgts[3], tgts[20] = -1, -1
	tok, tgt := mkInts(t, b, "tok", toks), mkInts(t, b, "tgt", tgts)
	wte := mk(t, b, "wte", randn(r, V*C, 1), V, C)
	wq := mk(t, b, "wq", randn(r, C*C, s), C, C)
	wk := mk(t, b, "wk", randn(r, KV*D*C, s), KV*D, C)
	wv := mk(t, b, "wv", randn(r, KV*D*C, s), KV*D, C)
	wo := mk(t, b, "wo", randn(r, C*C, s), C, C)
	wg := mk(t, b, "wg", randn(r, F*C, s), F, C)
	wu := mk(t, b, "wu", randn(r, F*C, s), F, C)
	wd := mk(t, b, "wd", randn(r, C*F, 1/math.Sqrt(float64(F))), C, F)
	nw := mk(t, b, "nw", randn(r, C, 0.1), C)
	b.Map(gpu.MapScale, nw, 0.5)
	add(t, b, nw, nw, mk(t, b, "ones", ones(C), C))
	a := func(name string, shape ...int) *gpu.Tensor { return mk(t, b, name, nil, shape...) }

	x, xn, rstd := a("x", N, C), a("xn", N, C), a("rstd", N)
	q, k, v := a("q", N, C), a("k", N, KV*D), a("v", N, KV*D)
	att, lse, o, res := a("att", N, C), a("lse", B*H*T), a("o", N, C), a("res", N, C)
	g, u, hh, y := a("g", N, F), a("u", N, F), a("h", N, F), a("y", N, C)
	logits, losses := a("logits", N, V), a("losses", N)
	b.Embedding(x, wte, tok)
	b.RMSNorm(xn, rstd, x, nw, 1e-5)
	b.Gemm(q, xn, wq, false, true, 1, 0)
	b.Gemm(k, xn, wk, false, true, 1, 0)
	b.Gemm(v, xn, wv, false, true, 1, 0)
	b.RoPE(q, T, H, D, 10000, false)
	b.RoPE(k, T, KV, D, 10000, false)
	b.Attention(att, lse, q, k, v, B, T, H, KV, D)
	b.Gemm(o, att, wo, false, true, 1, 0)
	add(t, b, res, x, o)
	b.Gemm(g, res, wg, false, true, 1, 0)
	b.Gemm(u, res, wu, false, true, 1, 0)
	b.SwiGLU(hh, g, u)
	b.Gemm(y, hh, wd, false, true, 1, 0)
	b.Gemm(logits, y, wte, false, true, 1, 0)
	out := map[string][]float64{}
	for name, t2 := range map[string]*gpu.Tensor{"x": x, "xn": xn, "rstd": rstd, "q": q, "k": k, "v": v,
		"att": att, "lse": lse, "res": res, "h": hh, "y": y, "logits": logits} {
		out[name] = get(t, b, t2)
	}
	b.CrossEntropy(losses, logits, tgt, true, 1/float32(N))
	out["losses"], out["dlogits"] = get(t, b, losses), get(t, b, logits)

	dwte, dy, dh := a("dwte", V, C), a("dy", N, C), a("dh", N, F)
	b.Gemm(dy, logits, wte, false, false, 1, 0)
	b.Gemm(dwte, logits, y, true, false, 1, 0)
	b.Gemm(dh, dy, wd, false, false, 1, 0)
	b.SwiGLUBackward(g, u, dh, g, u) // in place, as the model may do
	dres, datt := a("dres", N, C), a("datt", N, C)
	b.Gemm(dres, g, wg, false, false, 1, 0)
	b.Gemm(dres, u, wu, false, false, 1, 1)
	b.Gemm(datt, dres, wo, false, false, 1, 0)
	dq, dk, dv := a("dq", N, C), a("dk", N, KV*D), a("dv", N, KV*D)
	b.AttentionBackward(dq, dk, dv, datt, q, k, v, att, lse, B, T, H, KV, D)
	b.RoPE(dq, T, H, D, 10000, true)
	b.RoPE(dk, T, KV, D, 10000, true)
	dxn, dnw := a("dxn", N, C), a("dnw", C)
	b.Gemm(dxn, dq, wq, false, false, 1, 0)
	b.Gemm(dxn, dk, wk, false, false, 1, 1)
	b.Gemm(dxn, dv, wv, false, false, 1, 1)
	dx := a("dx", N, C)
	if err := b.Copy(dx, dres); err != nil {
		t.Fatal(err)
	}
	b.RMSNormBackward(dx, dnw, dxn, x, nw, rstd)
	b.EmbeddingBackward(dwte, dx, tok)
	for name, t2 := range map[string]*gpu.Tensor{"dy": dy, "dgate": g, "dup": u, "dres": dres,
		"dq": dq, "dk": dk, "dv": dv, "dxn": dxn, "dnw": dnw, "dx": dx, "dwte": dwte} {
		out[name] = get(t, b, t2)
	}

	acc, clip := a("acc", 1), a("clip", 1)
	b.SumSquares(acc, dwte, dnw, dq)
	b.ClipScale(clip, acc, 0.5)
	out["sumsq"], out["clip"] = get(t, b, acc), get(t, b, clip)
	m, vv := mkFull(t, b, "m", V, C), mkFull(t, b, "vv", V, C) // Low moments would be rounded to bf16
	hp := gpu.AdamParams{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, Scale: 1, Step: 1}
	adamW(b, wte, dwte, m, vv, clip, hp)
	out["wte'"], out["m"], out["v"] = get(t, b, wte), get(t, b, m), get(t, b, vv)
	dir, mc, vc := a("dir", C, 1), mkFull(t, b, "mc", C, 1), mkFull(t, b, "vc", C, 1)
	hp.Scale, hp.Step = 0.25, 3
	adamDirection(b, dir, dnw.Reshape(C, 1), mc, vc, clip, hp)
	out["dir"] = get(t, b, dir)
	P := a("P", C, 8)
	b.Projection(P, gpu.ProjectionStream{Seed: seed, Stream: 5, Epoch: 2})
	out["P"] = get(t, b, P)
	return out
}

func ones(n int) []float64 {
	o := make([]float64, n)
	for i := range o {
		o[i] = 1
	}
	return o
}

func TestFloat32MatchesFloat64(t *testing.T) {
	want := pipeline(t, New64(2), 42)
	got := pipeline(t, New(2), 42)
	for _, name := range slices.Sorted(maps.Keys(want)) {
		e := relErr(got[name], want[name])
		t.Logf("%s: float32 vs float64 rel error %.2g", name, e)
		if !(e < 1e-5) {
			t.Errorf("%s: float32 vs float64 rel error %.3g", name, e)
		}
	}
}

func TestDeterministic(t *testing.T) {
	mkb := func(threads int) gpu.Backend {
		b := New(threads)
		b.splitAll = true
		return b
	}
	first := pipeline(t, mkb(3), 7)
	// Same thread count: bit-identical. The split never changes any element's
	// order of summation, so other thread counts agree too.
	for _, threads := range []int{3, 1, 2} {
		again := pipeline(t, mkb(threads), 7)
		for name, w := range first {
			for i := range w {
				if math.Float64bits(again[name][i]) != math.Float64bits(w[i]) {
					t.Errorf("threads=%d: %s[%d] = %v, first run %v", threads, name, i, again[name][i], w[i])
					break
				}
			}
		}
	}
}

// ---- optimizer, norms, projection ----

// adamW is Backend.Adam updating weights p, whose store is not rounded,
// with moments m, v of any float precision.
func adamW(b gpu.Backend, p, g, m, v, clip *gpu.Tensor, hp gpu.AdamParams) {
	b.Adam(gpu.AdamUpdate{Out: p, Grad: g, M: gpu.Moment{Data: m}, V: gpu.Moment{Data: v}, Clip: clip, Hyper: hp})
}

// adamDirection is Backend.Adam writing the direction into dir.
func adamDirection(b gpu.Backend, dir, g, m, v, clip *gpu.Tensor, hp gpu.AdamParams) {
	b.Adam(gpu.AdamUpdate{Out: dir, Grad: g, M: gpu.Moment{Data: m}, V: gpu.Moment{Data: v}, Clip: clip, Hyper: hp, Direction: true})
}

// TestAdam checks both Adam forms against their textbook formulas, written
// out independently in float64: torch's mhat/(sqrt(vhat)+eps) and
// HuggingFace's sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v)+eps). eps is large next
// to sqrt(v) so that the two forms differ well beyond the tolerances.
func TestAdam(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 1))
	n := 37
	p0 := randn(r, n, 1)
	grads := [][]float64{randn(r, n, 1e-2), randn(r, n, 1e-2), randn(r, n, 1e-2), randn(r, n, 1e-2)}
	const clipv = 0.8
	final := map[gpu.AdamForm][]float64{}
	for _, form := range []gpu.AdamForm{gpu.AdamTorch, gpu.AdamHF} {
		hp := gpu.AdamParams{LR: 3e-3, Beta1: 0.9, Beta2: 0.95, Eps: 1e-3, WeightDecay: 0.1, Scale: 0.5, Form: form}
		// Scalar reference in float64 from the float32 hyper-parameters.
		b1, b2, eps := float64(hp.Beta1), float64(hp.Beta2), float64(hp.Eps)
		lr, wd, sc := float64(hp.LR), float64(hp.WeightDecay), float64(hp.Scale)
		p, m, v := append([]float64(nil), p0...), make([]float64, n), make([]float64, n)
		var dirs [][]float64
		for s, g := range grads {
			step := float64(s + 1)
			dir := make([]float64, n)
			for i := range p {
				gi := g[i] * clipv
				m[i] = b1*m[i] + (1-b1)*gi
				v[i] = b2*v[i] + (1-b2)*gi*gi
				if form == gpu.AdamHF {
					stepSize := math.Sqrt(1-math.Pow(b2, step)) / (1 - math.Pow(b1, step))
					dir[i] = sc * stepSize * m[i] / (math.Sqrt(v[i]) + eps)
				} else {
					mhat, vhat := m[i]/(1-math.Pow(b1, step)), v[i]/(1-math.Pow(b2, step))
					dir[i] = sc * mhat / (math.Sqrt(vhat) + eps)
				}
				p[i] -= lr * (dir[i] + wd*p[i])
			}
			dirs = append(dirs, dir)
		}
		final[form] = p

		for _, tc := range []struct {
			b   gpu.Backend
			tol float64
		}{{ref64(), 1e-14}, {New(2), 1e-5}} {
			b := tc.b
			pt, mt, vt := mk(t, b, "p", p0, n), mkFull(t, b, "m", n), mkFull(t, b, "v", n)
			md, vd := mkFull(t, b, "md", n), mkFull(t, b, "vd", n)
			ml, vl := mkFull(t, b, "ml", n), mkFull(t, b, "vl", n)
			dir, err := b.Alloc("dir", gpu.Workspace, gpu.Full, n)
			if err != nil {
				t.Fatal(err)
			}
			dirLow, err := b.Alloc("dir_bf16", gpu.Workspace, gpu.Low, n)
			if err != nil {
				t.Fatal(err)
			}
			clip := mk(t, b, "clip", []float64{clipv}, 1)
			name := fmt.Sprintf("%s form %d", b.Name(), form)
			for s, g := range grads {
				hp.Step = s + 1
				gt := mk(t, b, "g", g, n)
				adamW(b, pt, gt, mt, vt, clip, hp)
				adamDirection(b, dir, gt, md, vd, clip, hp)
				adamDirection(b, dirLow, gt, ml, vl, clip, hp)
				full := get(t, b, dir)
				expectClose(t, name+" AdamDirection", full, dirs[s], tc.tol)
				// A Low direction is the Full one rounded to the nearest bf16.
				for i, d := range get(t, b, dirLow) {
					if want := float64(gpu.BF16Nearest(float32(full[i]))); d != want {
						t.Fatalf("%s step %d: bf16 direction[%d] = %v, want %v", name, s+1, i, d, want)
					}
				}
			}
			expectClose(t, name+" AdamW p", get(t, b, pt), p, tc.tol)
			expectClose(t, name+" AdamW m", get(t, b, mt), m, tc.tol)
			expectClose(t, name+" AdamW v", get(t, b, vt), v, tc.tol)
			expectClose(t, name+" AdamDirection m", get(t, b, md), m, tc.tol)
		}
	}
	// The comparison above only means something if the forms differ.
	var diff float64
	for i := range p0 {
		diff = math.Max(diff, math.Abs(final[gpu.AdamHF][i]-final[gpu.AdamTorch][i]))
	}
	if diff < 1e-4 {
		t.Fatalf("torch and HF forms differ by only %g: the test cannot tell them apart", diff)
	}
}

func TestSumSquaresClipScale(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 1))
	for _, b := range []gpu.Backend{ref64(), New(3)} {
		big := randn(r, 3*sumChunk+17, 1)
		small := randn(r, 15, 1)
		tb := mk(t, b, "big", big, len(big))
		ts := mk(t, b, "small", small, 5, 3)
		acc := mk(t, b, "acc", []float64{2}, 1)
		b.SumSquares(acc, tb, ts.Rows(1, 4))
		want := 2 + dot(big, big) + dot(small[3:12], small[3:12])
		if got := get(t, b, acc)[0]; math.Abs(got-want) > 1e-6*want {
			t.Errorf("%s SumSquares = %.10g, want %.10g", b.Name(), got, want)
		}
		clip := mk(t, b, "clip", nil, 1)
		for _, tc := range []struct{ sumSq, maxNorm, want float64 }{
			{16, 1, 1 / (4 + 1e-6)}, {16, 0, 1}, {16, -1, 1}, {0.25, 1, 1}, {16, 8, 1},
		} {
			b.ClipScale(clip, mk(t, b, "ss", []float64{tc.sumSq}, 1), float32(tc.maxNorm))
			if got := get(t, b, clip)[0]; math.Abs(got-tc.want) > 1e-7 {
				t.Errorf("%s ClipScale(%g, %g) = %g, want %g", b.Name(), tc.sumSq, tc.maxNorm, got, tc.want)
			}
		}
	}
}

func TestProjection(t *testing.T) {
	n, r := 13, 6
	for _, kind := range []gpu.ProjectionKind{gpu.Gaussian, gpu.Rademacher} {
		pk := projection.Kind(kind)
		b64, b32 := ref64(), New(2)
		want := make([]float64, n*r)
		projection.Fill(want, n, r, pk, 0x123456789, 17, 3)
		want32 := make([]float32, n*r)
		projection.Fill32(want32, n, r, pk, 0x123456789, 17, 3)
		// Full keeps the generator's values; Low holds them rounded to bf16.
		// Stored wider than the rank (rank 0: as wide as stored), P holds
		// the same values at the wider row stride and exact zeros after
		// them, whatever the buffer held before.
		for _, prec := range []gpu.Precision{gpu.Full, gpu.Low} {
			for _, c := range []struct{ rank, cols int }{{0, r}, {r, r}, {r, r + 3}, {r, 8}} {
				s := gpu.ProjectionStream{Seed: 0x123456789, Stream: 17, Epoch: 3, Kind: kind, Rank: c.rank}
				P64, err := b64.Alloc("P", gpu.Projection, prec, n, c.cols)
				if err != nil {
					t.Fatal(err)
				}
				P32, err := b32.Alloc("P", gpu.Projection, prec, n, c.cols)
				if err != nil {
					t.Fatal(err)
				}
				junk := make([]float32, n*c.cols)
				for i := range junk {
					junk[i] = float32(i + 1)
				}
				if err := b64.Upload(P64, junk); err != nil {
					t.Fatal(err)
				}
				if err := b32.Upload(P32, junk); err != nil {
					t.Fatal(err)
				}
				b64.Projection(P64, s)
				b32.Projection(P32, s)
				got64, got32 := b64.f(P64), b32.f(P32)
				for i := range n {
					for j := range c.cols {
						var w64 float64
						var w32 float32
						if j < r {
							w64, w32 = want[i*r+j], want32[i*r+j]
						}
						if prec == gpu.Low {
							w32 = gpu.BF16Nearest(w32)
							w64 = float64(w32)
						}
						e := i*c.cols + j
						if got64[e] != w64 || got32[e] != w32 {
							t.Fatalf("kind %d precision %d rank %d cols %d: P[%d,%d] = %v / %v, want %v / %v",
								kind, prec, c.rank, c.cols, i, j, got64[e], got32[e], w64, w32)
						}
					}
				}
			}
		}
	}
}

// A rank wider than P's storage is a caller's bug, refused loudly.
func TestProjectionRankWiderThanP(t *testing.T) {
	b := New(1)
	P, err := b.Alloc("P", gpu.Projection, gpu.Full, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Projection with rank 5 into 3 columns did not panic")
		}
	}()
	b.Projection(P, gpu.ProjectionStream{Rank: 5})
}

// ---- plumbing ----

func TestMemoryAccounting(t *testing.T) {
	b := New(1)
	w, _ := b.Alloc("w", gpu.Weights, gpu.Low, 3, 4)
	ids, _ := b.Alloc("ids", gpu.Activations, gpu.Int32, 5)
	s := b.Memory().Snapshot()
	if s.Current[gpu.Weights] != 48 || s.Current[gpu.Activations] != 20 || s.Total != 68 {
		t.Fatalf("after alloc: %+v", s)
	}
	b.Free(w.Rows(0, 2)) // views are not freed
	b.Free(w)
	b.Free(w) // double free is ignored
	s = b.Memory().Snapshot()
	if s.Current[gpu.Weights] != 0 || s.Total != 20 || s.PeakAll != 68 || s.Peak[gpu.Weights] != 48 {
		t.Fatalf("after free: %+v", s)
	}
	b.Free(ids)
	b64 := New64(1)
	m, _ := b64.Alloc("m", gpu.Optimizer, gpu.Full, 2, 5)
	if got := b64.Memory().Snapshot().Current[gpu.Optimizer]; got != 80 {
		t.Errorf("float64 optimizer bytes = %d, want 80", got)
	}
	b64.Free(m)
	if _, err := b.Alloc("bad", gpu.Other, gpu.Low, 2, -1); err == nil {
		t.Error("negative dimension accepted")
	}
	if b.Name() != "cpu" || b64.Name() != "cpu-f64" {
		t.Errorf("names %q %q", b.Name(), b64.Name())
	}
}

func TestTransfersAndElementwise(t *testing.T) {
	b := New(2)
	x := mk(t, b, "x", []float64{1, 2, 3, 4, 5, 6}, 3, 2)
	if err := b.Upload(x, []float32{1, 2}); err == nil {
		t.Error("short upload accepted")
	}
	if err := b.Upload(x.Rows(1, 2), []float32{-3, -4}); err != nil {
		t.Fatal(err)
	}
	if got := get(t, b, x); relErr(got, []float64{1, 2, -3, -4, 5, 6}) != 0 {
		t.Errorf("row upload: %v", got)
	}
	y := mk(t, b, "y", nil, 6)
	if err := b.Copy(y, x); err != nil {
		t.Fatal(err)
	}
	b.Map(gpu.MapScale, y, 3)
	if got := get(t, b, y); relErr(got, []float64{3, 6, -9, -12, 15, 18}) != 0 {
		t.Errorf("Copy/Scale: %v", got)
	}
	b.Zero(y.Rows(2, 4))
	if got, _ := b.Download(y); got[2] != 0 || got[3] != 0 || got[4] != 15 {
		t.Errorf("Zero of a view: %v", got)
	}
	ids := mkInts(t, b, "ids", []int32{4, 7})
	if err := b.Copy(y.Rows(0, 2), ids); err == nil {
		t.Error("int32 -> float copy accepted")
	}
	if err := b.Upload(ids, []float32{1, 2}); err == nil {
		t.Error("float upload into int32 accepted")
	}
}
