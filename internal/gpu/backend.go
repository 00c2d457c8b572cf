// Package gpu is the vocabulary shared by the model and the compute
// backends: the opaque tensor handle, precisions, memory categories and
// statistics, the hyper-parameter and rounding structs, and the interfaces a
// backend implements. The backends live below it: gpu/cpu (pure Go,
// deterministic, the readable reference), gpu/cuda (the fast one) and the
// metering allocator in this package; gpu/device picks one by name.
//
// Conventions shared by every op, in the style of llm.c:
//   - N is the number of tokens in a micro-batch, N = B*T, row n = b*T + t.
//   - Activations are row-major (N, width). Weights are row-major (out, in),
//     as in HuggingFace, so a linear layer is out = x W^T.
//   - Ops that produce a gradient for a weight or for the residual stream
//     accumulate into it (+=) where the doc says so; every other output is
//     overwritten.
//   - Tensors passed to one call never alias unless the doc allows it.
package gpu

// Precision says how a tensor is stored. The CPU backend keeps Low and Full
// in its element type (float32, or float64 for gradient checks); the CUDA
// backend stores Low tensors in bf16 and Full tensors in fp32.
type Precision int

const (
	Low   Precision = iota // weights and activations
	Full                   // master weights, optimizer state, reductions
	Int32                  // token ids and targets
	// Code8 is one byte per element: the 8-bit codes of quantized Adam
	// moments (quant8.go). Transfers carry each code as its number 0..255.
	Code8
	NumPrecisions
)

// ProjectionKind selects the distribution of CompAct's random projection.
type ProjectionKind int

const (
	Gaussian   ProjectionKind = iota // N(0, 1/r)
	Rademacher                       // ±1/sqrt(r)
)

// ProjectionStream identifies one projection matrix: the same stream gives the
// same P on every backend (see internal/projection for the generator).
type ProjectionStream struct {
	Seed   uint64
	Stream uint32 // projection.StreamID: layer*8 + group (o_proj: 2^31 + layer)
	Epoch  uint32 // optimizer step / update_gap
	Kind   ProjectionKind
	// Rank is the logical r: the scale 1/sqrt(r) and the element index
	// i*r + j of P(i, j). P may have more columns (storage padded for
	// aligned GEMMs); those are written as zeros. 0: P's width.
	Rank int
}

// Dims is the shape of P (n, cols) with the logical rank r that s gives it;
// ok is false when P is not 2-D or r is not in [1, cols].
func (s ProjectionStream) Dims(P *Tensor) (n, r, cols int, ok bool) {
	if len(P.Shape) != 2 {
		return 0, 0, 0, false
	}
	n, cols = P.Shape[0], P.Shape[1]
	r = s.Rank
	if r == 0 {
		r = cols
	}
	return n, r, cols, r >= 1 && r <= cols
}

// Allocator is the memory side of a backend: what the metering backend
// implements, so memory is predicted by the engine's own allocation code.
type Allocator interface {
	Name() string
	// Alloc returns a zeroed tensor accounted under cat. Free releases it.
	Alloc(name string, cat Category, p Precision, shape ...int) (*Tensor, error)
	Free(t *Tensor)
	Memory() *MemStats
	// MasterWeights reports whether Low weights are narrower than Full, so
	// the optimizer must keep a Full master copy and round into W after
	// every update.
	MasterWeights() bool
}

// Backend is an Allocator with the transfers and kernels the model and the
// optimizer call, and nothing else (test helpers live with the tests).
// Shapes in the docs use N tokens, C hidden width, F intermediate width, V
// vocabulary, H query heads, KV key/value heads, D head dim.
type Backend interface {
	Allocator
	// Sync waits for queued work; a no-op on the CPU.
	Sync() error
	Close() error

	// Host transfers. Float32 is the exchange type; DownloadF64 reads the
	// float64 reference backend's sums (losses, logits) without rounding
	// them to float32, which gradient checks need.
	Upload(t *Tensor, src []float32) error
	Download(t *Tensor) ([]float32, error)
	DownloadF64(t *Tensor) ([]float64, error)
	UploadInt32(t *Tensor, src []int32) error
	Copy(dst, src *Tensor) error // same length, any precisions
	Zero(t *Tensor)

	// Encoder: out (N,C) = wte[tokens[n], :]; wte (V,C).
	Embedding(out, wte, tokens *Tensor)
	// dwte[tokens[n], :] += dout[n, :]; deterministic order over n.
	EmbeddingBackward(dwte, dout, tokens *Tensor)

	// out = x * rstd * w with rstd[n] = 1/sqrt(mean_c x[n,c]^2 + eps);
	// x,out (N,C), w (C), rstd (N) Full. rstd may be nil (not saved).
	RMSNorm(out, rstd, x, w *Tensor, eps float32)
	// dx += dL/dx, dw += dL/dw given dout and the forward's x, w, rstd.
	RMSNormBackward(dx, dw, dout, x, w, rstd *Tensor)

	// c (M,N) = alpha * op(a) op(b) + beta * c, all row-major; op(a) is a^T
	// when transA (a stored (K,M)), op(b) is b^T when transB (b stored (N,K)).
	// beta=0 ignores c's old contents.
	Gemm(c, a, b *Tensor, transA, transB bool, alpha, beta float32)

	// x[i] = op(x[i], alpha) in place, Low or Full; the ops and their math
	// are in mapop.go (MapScale: x *= alpha).
	Map(op MapOp, x *Tensor, alpha float32)

	// RoPE, split-half convention (HF rotate_half): for head h, pair
	// (i, i+D/2), i < D/2, angle = pos * theta^(-2i/D), pos = n mod T:
	// x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin. In place on x (N, heads*D).
	// inverse rotates by -angle, which is the backward pass.
	RoPE(x *Tensor, T, heads, D int, theta float32, inverse bool)

	// Causal attention with grouped-query heads: q,out (N, H*D); k,v (N, KV*D);
	// query head h reads kv head h / (H/KV); scale 1/sqrt(D). lse (B*H*T) Full
	// is the log-sum-exp of each softmax row, index (b*H + h)*T + t.
	Attention(out, lse, q, k, v *Tensor, B, T, H, KV, D int)
	// Overwrites dq, dk, dv from dout and the forward's tensors.
	AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *Tensor, B, T, H, KV, D int)

	// out = silu(gate) * up, all (N,F).
	SwiGLU(out, gate, up *Tensor)
	// Overwrites dgate, dup. dgate and dup may alias gate and up
	// (the backward then runs in place).
	SwiGLUBackward(dgate, dup, dout, gate, up *Tensor)

	// Fused softmax cross-entropy on one chunk of logits (n, V), in place:
	// losses[i] = logsumexp(logits[i]) - logits[i, targets[i]] and, when
	// grad, logits[i] becomes gradScale * (softmax(logits[i]) - onehot).
	// A target < 0 is ignored: loss 0 and zero gradient row.
	// losses (n) Full, targets (n) Int32.
	CrossEntropy(losses, logits, targets *Tensor, grad bool, gradScale float32)

	// acc[0] += sum of squares of every element of ts; acc (1) Full.
	SumSquares(acc *Tensor, ts ...*Tensor)
	// clip[0] = min(1, maxNorm / (sqrt(sumSq[0]) + 1e-6)); maxNorm <= 0 gives 1.
	ClipScale(clip, sumSq *Tensor, maxNorm float32)

	// Adam is the one optimizer kernel: an Adam step over u.Out.Len()
	// elements whose operands, and how each is stored, are data in u
	// (adam.go): the updated weights or the compressed direction, fp32,
	// bf16 or 8-bit moments, stochastic rounding where bf16 is stored.
	Adam(u AdamUpdate)

	// P (n, cols) from the counter-based generator: its first s.Rank
	// columns (all when s.Rank is 0) are the (n, s.Rank) matrix of the
	// stream at row stride cols, the rest are zero; identical on all
	// backends up to float rounding. A Low P holds the values rounded to
	// the nearest bf16 on every backend.
	Projection(P *Tensor, s ProjectionStream)

	// dst (Low) = SR(fl(fl(beta * dst) + src)), each product and sum
	// rounded to fp32 on its own (no fused multiply-add), then rounded to
	// bf16 stochastically with the noise of rp (rounding.go): the same bits
	// on every backend. beta = 0 ignores dst's old contents (dst = SR(src)),
	// as Gemm's does. src is Full, of dst's length, and may not alias it. A
	// CPU backend stores the bf16 value in its own element type. The
	// master-free compressed update lands with it: W = SR((1 - lr wd) W + D).
	StochasticRound(dst, src *Tensor, beta float32, rp RoundParams)
}

// Decoder is implemented by backends that generate with a KV cache (CPU and
// CUDA). It is a separate interface so that a backend without it (the
// metering backend) still builds models; `compact sample` says so plainly.
type Decoder interface {
	// RoPEAt is RoPE with every row of x (n, heads*D) at position pos.
	RoPEAt(x *Tensor, pos, heads, D int, theta float32)
	// AttentionDecode attends one new query row per sequence to the cache:
	// q, out (B, H*D); kc, vc (maxT*B, KV*D) with position j of sequence b
	// in row j*B + b, so one step's k/v rows are contiguous; positions
	// [0, t) are valid (the new token's own k, v already written at t-1).
	// Grouped-query heads as in Attention; scale 1/sqrt(D).
	AttentionDecode(out, q, kc, vc *Tensor, B, t, H, KV, D int)
}
