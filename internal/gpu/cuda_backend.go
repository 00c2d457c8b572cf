//go:build linux && (amd64 || arm64)

package gpu

// The CUDA backend: the same Backend as the CPU reference, with tensors in
// device memory (Low = bf16, Full = fp32, Int32 = int32), GEMMs through
// cuBLASLt and every other op a kernel from csrc/ compiled at run time with
// NVRTC. Work is queued on one stream; only transfers to the host wait.

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"unsafe"

	"github.com/compact-llm/compact/csrc"
)

// CUDA is the GPU backend of one device.
type CUDA struct {
	dev   *CudaDevice
	mem   MemStats
	pool  map[int64][]uintptr // freed blocks by rounded size, reused before cuMemAlloc
	mu    sync.Mutex
	mods  []*CudaModule
	fns   map[string]*CudaFunction
	gemmW uintptr
	// scratch reused across calls, grown on demand (workspace category)
	scratch      uintptr
	scratchBytes int64
	prof         *kernelProfile
}

var _ Backend = (*CUDA)(nil)

// NewCUDA opens device ordinal and compiles the kernels.
func NewCUDA(ordinal int) (*CUDA, error) {
	dev, err := OpenCudaDevice(ordinal)
	if err != nil {
		return nil, err
	}
	c := &CUDA{dev: dev, pool: map[int64][]uintptr{}, fns: map[string]*CudaFunction{}}
	if err := c.loadKernels(); err != nil {
		dev.Close()
		return nil, err
	}
	w, err := c.rawAlloc(GemmWorkspaceBytes, Workspace)
	if err != nil {
		dev.Close()
		return nil, err
	}
	c.gemmW = w
	dev.SetGemmWorkspace(w, GemmWorkspaceBytes)
	return c, nil
}

// loadKernels compiles every csrc/*.cu (cached on disk by NVRTC's key).
func (c *CUDA) loadKernels() error {
	common, err := csrc.FS.ReadFile("common.cuh")
	if err != nil {
		return err
	}
	entries, err := csrc.FS.ReadDir(".")
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".cu") {
			continue
		}
		src, err := csrc.FS.ReadFile(name)
		if err != nil {
			return err
		}
		// NVRTC gets common.cuh inline: no header search path to set up.
		full := strings.Replace(string(src), `#include "common.cuh"`, string(common), 1)
		mod, err := c.dev.CompileModule(name, full)
		if err != nil {
			return fmt.Errorf("kernel %s: %w", name, err)
		}
		c.mods = append(c.mods, mod)
	}
	return nil
}

// fn finds a kernel by its extern "C" name in any module, once.
func (c *CUDA) fn(name string) *CudaFunction {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.fns[name]; ok {
		return f
	}
	for _, m := range c.mods {
		if f, err := m.Function(name); err == nil {
			c.fns[name] = f
			return f
		}
	}
	panic("cuda: no kernel named " + name + " in csrc/")
}

func (c *CUDA) Name() string        { return "cuda" }
func (c *CUDA) MasterWeights() bool { return true }
func (c *CUDA) Memory() *MemStats   { return &c.mem }
func (c *CUDA) Sync() error         { return c.dev.Sync() }

// Describe names the device for logs.
func (c *CUDA) Describe() string {
	major, minor := c.dev.ComputeCapability()
	return fmt.Sprintf("cuda:%d %s (sm_%d%d, %.1f GiB)", c.dev.Ordinal(), c.dev.Name(), major, minor, float64(c.dev.TotalMem())/(1<<30))
}

// MemGetInfo is the driver's free and total device memory.
func (c *CUDA) MemGetInfo() (free, total int64, err error) { return c.dev.MemGetInfo() }

// Device is the underlying device (name, memory info, events).
func (c *CUDA) Device() *CudaDevice { return c.dev }

func (c *CUDA) Close() error {
	c.mu.Lock()
	for _, blocks := range c.pool {
		for _, p := range blocks {
			c.dev.Free(p)
		}
	}
	c.pool = nil
	c.mu.Unlock()
	return c.dev.Close()
}

func elemBytes(p Precision) int64 {
	if p == Low {
		return 2
	}
	return 4
}

func dtypeOf(t *Tensor) CudaDType {
	if t.Prec == Low {
		return CudaBF16
	}
	return CudaF32
}

// ptr is the device address of t's first element.
func (t *Tensor) ptr() uintptr { return t.Ptr + uintptr(int64(t.Off)*elemBytes(t.Prec)) }

// roundSize buckets allocation sizes so freed blocks are reusable.
func roundSize(n int64) int64 {
	const small = 512
	if n <= 1<<20 {
		return (n + small - 1) / small * small
	}
	const big = 2 << 20
	return (n + big - 1) / big * big
}

func (c *CUDA) rawAlloc(bytes int64, cat Category) (uintptr, error) {
	size := roundSize(bytes)
	c.mu.Lock()
	defer c.mu.Unlock()
	if blocks := c.pool[size]; len(blocks) > 0 {
		p := blocks[len(blocks)-1]
		c.pool[size] = blocks[:len(blocks)-1]
		c.mem.Add(cat, bytes)
		return p, nil
	}
	p, err := c.dev.Malloc(size)
	if err != nil {
		return 0, err
	}
	c.mem.Add(cat, bytes)
	return p, nil
}

func (c *CUDA) Alloc(name string, cat Category, p Precision, shape ...int) (*Tensor, error) {
	t := &Tensor{Name: name, Shape: shape, Prec: p, Cat: cat}
	bytes := int64(t.Len()) * elemBytes(p)
	if bytes == 0 {
		bytes = 1
	}
	ptr, err := c.rawAlloc(bytes, cat)
	if err != nil {
		return nil, fmt.Errorf("allocating %s%v (%s, %d bytes): %w", name, shape, cat, bytes, err)
	}
	t.Ptr = ptr
	c.Zero(t)
	return t, nil
}

func (c *CUDA) Free(t *Tensor) {
	if t == nil || t.view || t.Ptr == 0 {
		return
	}
	bytes := int64(t.Len()) * elemBytes(t.Prec)
	if bytes == 0 {
		bytes = 1
	}
	c.rawFree(t.Ptr, bytes, t.Cat)
	t.Ptr = 0
}

// check panics on a CUDA error inside an op: ops have no error result, and
// a failed launch means a bug or a dead device, not bad input.
func must(err error) {
	if err != nil {
		panic(fmt.Sprintf("cuda: %v", err))
	}
}

func (c *CUDA) launch(name string, grid, block [3]uint32, shmem uint32, args ...any) {
	c.timed(name, func() { must(c.dev.Launch(c.fn(name), grid, block, shmem, args...)) })
}

// grid1 covers n elements with 256-thread blocks of 8 elements per thread,
// capped for the grid-stride kernels (csrc/elementwise.cu's launch rule).
func grid1(n int64) [3]uint32 {
	g := (n + 256*8 - 1) / (256 * 8)
	if g > 132*16 {
		g = 132 * 16
	}
	if g < 1 {
		g = 1
	}
	return [3]uint32{uint32(g), 1, 1}
}

var block256 = [3]uint32{256, 1, 1}

func suffix(t *Tensor) string {
	if t.Prec == Low {
		return "_bf16"
	}
	return "_f32"
}

// ---- transfers ----

func bf16FromFloat(f float32) uint16 {
	b := math.Float32bits(f)
	if f != f { // NaN stays NaN
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1 // round to nearest even
	return uint16(b >> 16)
}

func floatFromBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

func (c *CUDA) Upload(t *Tensor, src []float32) error {
	if len(src) != t.Len() {
		return fmt.Errorf("upload %s: %d values for %d elements", t, len(src), t.Len())
	}
	switch t.Prec {
	case Low:
		buf := make([]uint16, len(src))
		for i, v := range src {
			buf[i] = bf16FromFloat(v)
		}
		return c.dev.HtoD(t.ptr(), unsafe.Pointer(unsafe.SliceData(buf)), int64(len(buf))*2)
	case Full:
		return c.dev.HtoD(t.ptr(), unsafe.Pointer(unsafe.SliceData(src)), int64(len(src))*4)
	}
	return fmt.Errorf("upload %s: float values into an int32 tensor", t)
}

func (c *CUDA) Download(t *Tensor) ([]float32, error) {
	out := make([]float32, t.Len())
	if len(out) == 0 {
		return out, nil
	}
	switch t.Prec {
	case Low:
		buf := make([]uint16, len(out))
		if err := c.dev.DtoH(unsafe.Pointer(unsafe.SliceData(buf)), t.ptr(), int64(len(buf))*2); err != nil {
			return nil, err
		}
		for i, h := range buf {
			out[i] = floatFromBF16(h)
		}
	case Full:
		if err := c.dev.DtoH(unsafe.Pointer(unsafe.SliceData(out)), t.ptr(), int64(len(out))*4); err != nil {
			return nil, err
		}
	default:
		buf := make([]int32, len(out))
		if err := c.dev.DtoH(unsafe.Pointer(unsafe.SliceData(buf)), t.ptr(), int64(len(buf))*4); err != nil {
			return nil, err
		}
		for i, v := range buf {
			out[i] = float32(v)
		}
	}
	return out, nil
}

func (c *CUDA) UploadF64(t *Tensor, src []float64) error {
	f := make([]float32, len(src))
	for i, v := range src {
		f[i] = float32(v)
	}
	return c.Upload(t, f)
}

func (c *CUDA) DownloadF64(t *Tensor) ([]float64, error) {
	f, err := c.Download(t)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(f))
	for i, v := range f {
		out[i] = float64(v)
	}
	return out, nil
}

// UploadInt32 does not wait for the GPU (token ids are uploaded every
// micro-batch): the values go through pinned staging (HtoDAsync), so src
// may be reused on return and the copy lands in stream order.
func (c *CUDA) UploadInt32(t *Tensor, src []int32) error {
	if t.Prec != Int32 || len(src) != t.Len() {
		return fmt.Errorf("upload %s: %d int32 values into %d elements of precision %d", t, len(src), t.Len(), t.Prec)
	}
	return c.dev.HtoDAsync(t.ptr(), unsafe.Pointer(unsafe.SliceData(src)), int64(len(src))*4)
}

func (c *CUDA) Copy(dst, src *Tensor) error {
	if dst.Len() != src.Len() {
		return fmt.Errorf("copy %s to %s: lengths differ", src, dst)
	}
	n := int64(dst.Len())
	switch {
	case dst.Prec == src.Prec:
		return c.dev.DtoD(dst.ptr(), src.ptr(), n*elemBytes(dst.Prec))
	case dst.Prec == Low && src.Prec == Full:
		c.launch("convert_f32_to_bf16", grid1(n), block256, 0, dst.ptr(), src.ptr(), n)
	case dst.Prec == Full && src.Prec == Low:
		c.launch("convert_bf16_to_f32", grid1(n), block256, 0, dst.ptr(), src.ptr(), n)
	default:
		return fmt.Errorf("copy %s to %s: int32 and float tensors do not convert", src, dst)
	}
	return nil
}

func (c *CUDA) Zero(t *Tensor) {
	if n := int64(t.Len()) * elemBytes(t.Prec); n > 0 {
		must(c.dev.MemsetD8(t.ptr(), 0, n))
	}
}

// ---- elementwise ----

func (c *CUDA) Add(out, a, b *Tensor) {
	n := int64(out.Len())
	c.launch("add"+suffix(out), grid1(n), block256, 0, out.ptr(), a.ptr(), b.ptr(), n)
}

func (c *CUDA) Axpy(y, x *Tensor, alpha float32) {
	n := int64(y.Len())
	c.launch("axpy"+suffix(y), grid1(n), block256, 0, y.ptr(), x.ptr(), alpha, n)
}

func (c *CUDA) Scale(x *Tensor, alpha float32) {
	n := int64(x.Len())
	c.launch("scale"+suffix(x), grid1(n), block256, 0, x.ptr(), alpha, n)
}

// ---- GEMM ----

func (c *CUDA) Gemm(cc, a, b *Tensor, transA, transB bool, alpha, beta float32) {
	N := cc.Dim(-1)
	M := cc.Len() / N
	var K int
	if transA {
		K = a.Len() / M
	} else {
		K = a.Dim(-1)
	}
	name := ""
	if c.prof != nil {
		name = fmt.Sprintf("gemm %s->%s %s%s %dx%dx%d", dtypeOf(a), dtypeOf(cc), trans(transA), trans(transB), M, N, K)
	}
	c.timed(name, func() {
		must(c.dev.Gemm(cc.ptr(), a.ptr(), b.ptr(), dtypeOf(cc), dtypeOf(a), dtypeOf(b), M, N, K, transA, transB, alpha, beta))
	})
}

// ---- model kernels ----

func i32(n int) int32 {
	if n > math.MaxInt32 {
		panic(fmt.Sprintf("cuda: %d does not fit a 32-bit kernel argument", n))
	}
	return int32(n)
}

func (c *CUDA) Embedding(out, wte, tokens *Tensor) {
	N, C := out.Len()/out.Dim(-1), out.Dim(-1)
	c.launch("embedding_fwd", grid1(int64(N*C)), block256, 0, out.ptr(), wte.ptr(), tokens.ptr(), i32(N), i32(C))
}

func (c *CUDA) EmbeddingBackward(dwte, dout, tokens *Tensor) {
	N, C := dout.Len()/dout.Dim(-1), dout.Dim(-1)
	c.launch("embedding_bwd", [3]uint32{uint32(N), 1, 1}, block256, 0, dwte.ptr(), dout.ptr(), tokens.ptr(), i32(N), i32(C))
}

func rowsOf(t *Tensor) (N, C int) { return t.Len() / t.Dim(-1), t.Dim(-1) }

func (c *CUDA) RMSNorm(out, rstd, x, w *Tensor, eps float32) {
	N, C := rowsOf(x)
	var r uintptr
	if rstd != nil {
		r = rstd.ptr()
	}
	c.launch("rmsnorm_fwd", [3]uint32{uint32((N + 7) / 8), 1, 1}, block256, 0, out.ptr(), r, x.ptr(), w.ptr(), i32(N), i32(C), eps)
}

func (c *CUDA) RMSNormBackward(dx, dw, dout, x, w, rstd *Tensor) {
	N, C := rowsOf(x)
	c.launch("rmsnorm_bwd_dx", [3]uint32{uint32((N + 7) / 8), 1, 1}, block256, 0, dx.ptr(), dout.ptr(), x.ptr(), w.ptr(), rstd.ptr(), i32(N), i32(C))
	// Two passes over row parts: the part count depends only on N, so the
	// result is reproducible on any GPU.
	parts := min(64, (N+255)/256)
	scratch := c.scratchFloats(int64(parts * C))
	c.launch("rmsnorm_bwd_dw_partial", [3]uint32{uint32((C + 31) / 32), uint32(parts), 1}, block256, 0, scratch, dout.ptr(), x.ptr(), rstd.ptr(), i32(N), i32(C))
	c.launch("rmsnorm_bwd_dw_finish", grid1(int64(C)), block256, 0, dw.ptr(), scratch, i32(parts), i32(C))
}

// scratchFloats returns a workspace of at least n floats, valid until the
// next call; growing it waits for queued work (it happens in the first step).
func (c *CUDA) scratchFloats(n int64) uintptr {
	bytes := n * 4
	if bytes <= c.scratchBytes {
		return c.scratch
	}
	if c.scratch != 0 {
		must(c.dev.Sync())
		c.rawFree(c.scratch, c.scratchBytes, Workspace)
	}
	p, err := c.rawAlloc(bytes, Workspace)
	must(err)
	c.scratch, c.scratchBytes = p, bytes
	return p
}

func (c *CUDA) rawFree(p uintptr, bytes int64, cat Category) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pool[roundSize(bytes)] = append(c.pool[roundSize(bytes)], p)
	c.mem.Add(cat, -bytes)
}

func (c *CUDA) RoPE(x *Tensor, T, heads, D int, theta float32, inverse bool) {
	N := x.Len() / (heads * D)
	total := int64(N) * int64(D/2)
	g := min((total+255)/256, 132*32)
	inv := int32(0)
	if inverse {
		inv = 1
	}
	c.launch("rope", [3]uint32{uint32(g), 1, 1}, block256, 0, x.ptr(), i32(N), i32(T), i32(heads), i32(D), theta, inv)
}

func (c *CUDA) SwiGLU(out, gate, up *Tensor) {
	n := int64(out.Len())
	c.launch("swiglu_fwd", grid1(n), block256, 0, out.ptr(), gate.ptr(), up.ptr(), n)
}

func (c *CUDA) SwiGLUBackward(dgate, dup, dout, gate, up *Tensor) {
	n := int64(dout.Len())
	c.launch("swiglu_bwd", grid1(n), block256, 0, dgate.ptr(), dup.ptr(), dout.ptr(), gate.ptr(), up.ptr(), n)
}

func (c *CUDA) CrossEntropy(losses, logits, targets *Tensor, grad bool, gradScale float32) {
	n, V := rowsOf(logits)
	if logits.Prec != Low {
		panic("cuda: CrossEntropy wants bf16 logits")
	}
	g := int32(0)
	if grad {
		g = 1
	}
	c.launch("cross_entropy", [3]uint32{uint32(n), 1, 1}, [3]uint32{512, 1, 1}, 0, losses.ptr(), logits.ptr(), targets.ptr(), i32(n), i32(V), g, gradScale)
}

// SumSquares gives each tensor its own slice of partial sums and finishes
// once: one launch per tensor plus one, in a fixed order.
func (c *CUDA) SumSquares(acc *Tensor, ts ...*Tensor) {
	partial := c.scratchFloats(int64(sumSquaresParts * len(ts)))
	for i, t := range ts {
		n := int64(t.Len())
		name := "sum_squares"
		if t.Prec == Low {
			name = "sum_squares_bf16"
		}
		c.launch(name, [3]uint32{sumSquaresParts, 1, 1}, block256, 0, partial+uintptr(i*sumSquaresParts*4), t.ptr(), n)
	}
	c.launch("sum_squares_finish", [3]uint32{1, 1, 1}, block256, 0, acc.ptr(), partial, i32(sumSquaresParts*len(ts)))
}

func (c *CUDA) ClipScale(clip, sumSq *Tensor, maxNorm float32) {
	c.launch("clip_scale", [3]uint32{1, 1, 1}, [3]uint32{1, 1, 1}, 0, clip.ptr(), sumSq.ptr(), maxNorm)
}

// biasCorrections are the kernels' bc1, bc2: the divisors of m and v of
// hp.Form, formed in float64 as the CPU does (see AdamParams.Corrections).
func biasCorrections(hp AdamParams) (float32, float32) {
	if hp.Step < 1 {
		panic("cuda: Adam step must be >= 1")
	}
	d1, d2 := hp.Corrections()
	return float32(d1), float32(d2)
}

// adamVariant names the precision variant of an optimizer kernel.
func adamVariant(base string, out *Tensor, outTag string, g *Tensor) string {
	name := base
	if out.Prec == Low {
		name += "_" + outTag + "bf16"
	}
	if g.Prec == Low {
		name += "_gbf16"
	}
	return name
}

func (c *CUDA) AdamW(p, g, m, v, clip *Tensor, hp AdamParams) {
	n := int64(p.Len())
	bc1, bc2 := biasCorrections(hp)
	var cl uintptr
	if clip != nil {
		cl = clip.ptr()
	}
	c.launch(adamVariant("adamw", p, "p", g), grid1(n), block256, 0, p.ptr(), g.ptr(), m.ptr(), v.ptr(), cl, n,
		hp.LR, hp.Beta1, hp.Beta2, hp.Eps, hp.WeightDecay, hp.Scale, bc1, bc2)
}

func (c *CUDA) AdamDirection(dir, g, m, v, clip *Tensor, hp AdamParams) {
	n := int64(dir.Len())
	bc1, bc2 := biasCorrections(hp)
	var cl uintptr
	if clip != nil {
		cl = clip.ptr()
	}
	c.launch(adamVariant("adam_direction", dir, "d", g), grid1(n), block256, 0, dir.ptr(), g.ptr(), m.ptr(), v.ptr(), cl, n,
		hp.Beta1, hp.Beta2, hp.Eps, hp.Scale, bc1, bc2)
}

func (c *CUDA) Projection(P *Tensor, s ProjectionStream) {
	n, r := P.Shape[0], P.Shape[1]
	blocks := (int64(n)*int64(r) + 3) / 4
	g := min((blocks+255)/256, 132*32)
	c.launch("projection"+suffix(P), [3]uint32{uint32(g), 1, 1}, block256, 0, P.ptr(), i32(n), i32(r), int32(s.Kind),
		uint32(s.Seed), uint32(s.Seed>>32), s.Stream, s.Epoch)
}

// attentionKernel picks the tensor-core kernel for D = 64 or 128 and the
// generic one otherwise.
func attentionKernel(base string, D int) string {
	switch D {
	case 64:
		return base + "_d64"
	case 128:
		return base + "_d128"
	}
	if D > 256 {
		panic(fmt.Sprintf("cuda: attention head dim %d > 256", D))
	}
	return base
}

func (c *CUDA) Attention(out, lse, q, k, v *Tensor, B, T, H, KV, D int) {
	nb := (T + 63) / 64
	c.launch(attentionKernel("attention_fwd", D), [3]uint32{uint32(B * H * nb), 1, 1}, [3]uint32{128, 1, 1}, 0,
		out.ptr(), lse.ptr(), q.ptr(), k.ptr(), v.ptr(), i32(B), i32(T), i32(H), i32(KV), i32(D))
}

func (c *CUDA) AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *Tensor, B, T, H, KV, D int) {
	rows := B * H * T
	delta := c.scratchFloats(int64(rows))
	c.launch("attention_bwd_delta", [3]uint32{uint32((rows + 7) / 8), 1, 1}, block256, 0,
		delta, dout.ptr(), out.ptr(), i32(B), i32(T), i32(H), i32(D))
	nb := (T + 63) / 64
	c.launch(attentionKernel("attention_bwd", D), [3]uint32{uint32(B*KV*nb + B*H*nb), 1, 1}, [3]uint32{128, 1, 1}, 0,
		dq.ptr(), dk.ptr(), dv.ptr(), dout.ptr(), q.ptr(), k.ptr(), v.ptr(), out.ptr(), lse.ptr(), delta,
		i32(B), i32(T), i32(H), i32(KV), i32(D))
}

func trans(t bool) string {
	if t {
		return "T"
	}
	return "N"
}

// RoPEAt rotates every row of x as position pos (KV-cache decoding).
func (c *CUDA) RoPEAt(x *Tensor, pos, heads, D int, theta float32) {
	N := x.Len() / (heads * D)
	total := int64(N) * int64(D/2)
	g := min((total+255)/256, 132*32)
	c.launch("rope_at", [3]uint32{uint32(g), 1, 1}, block256, 0, x.ptr(), i32(N), i32(pos), i32(heads), i32(D), theta)
}

// decodeMaxPositions keeps attention_decode's scores in 48 KiB of shared memory.
const decodeMaxPositions = 48<<10/4 - 32

// AttentionDecode attends one query row per sequence to the first t cached
// positions (see Decoder).
func (c *CUDA) AttentionDecode(out, q, kc, vc *Tensor, B, t, H, KV, D int) {
	if t > decodeMaxPositions {
		panic(fmt.Sprintf("cuda: attention_decode over %d positions (at most %d)", t, decodeMaxPositions))
	}
	c.launch("attention_decode", [3]uint32{uint32(B * H), 1, 1}, [3]uint32{128, 1, 1}, uint32((t+32)*4),
		out.ptr(), q.ptr(), kc.ptr(), vc.ptr(), i32(B), i32(t), i32(H), i32(KV), i32(D))
}

var _ Decoder = (*CUDA)(nil)
