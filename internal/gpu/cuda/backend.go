//go:build linux && (amd64 || arm64)

// Package cuda is the GPU backend: the same gpu.Backend as the CPU
// reference, with tensors in device memory (Low = bf16, Full = fp32, Int32 =
// int32, Code8 = bytes), GEMMs through cuBLASLt and every other op a kernel from csrc/
// compiled at run time with NVRTC. Work is queued on one stream; only
// transfers to the host wait. The driver, NVRTC and cuBLASLt bindings
// (driverbind.go, nvrtc.go, cublaslt.go, bound at run time through purego)
// and the device that calls them (driver.go: its thread and stream;
// memory.go, events.go) are private to this package.
package cuda

import (
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/compact-llm/compact/internal/gpu"
)

// Backend is the CUDA backend of one device.
type Backend struct {
	dev   *device
	k     kernels
	mem   gpu.MemStats
	pool  map[int64][]uintptr // freed blocks by rounded size, reused before cuMemAlloc
	mu    sync.Mutex
	gemmW uintptr
	// scratch reused across calls, grown on demand (workspace category)
	scratch      devPtr[float32]
	scratchBytes int64
	prof         *kernelProfile
}

var (
	_ gpu.Backend     = (*Backend)(nil)
	_ gpu.Decoder     = (*Backend)(nil)
	_ gpu.StepGrapher = (*Backend)(nil)
)

// New opens device ordinal and compiles the kernels.
func New(ordinal int) (*Backend, error) {
	dev, err := openDevice(ordinal)
	if err != nil {
		return nil, err
	}
	c := &Backend{dev: dev, pool: map[int64][]uintptr{}}
	if err := c.loadKernels(); err != nil {
		dev.Close()
		return nil, err
	}
	w, err := c.rawAlloc(gemmWorkspaceBytes, gpu.Workspace)
	if err != nil {
		dev.Close()
		return nil, err
	}
	c.gemmW = w
	dev.SetGemmWorkspace(w, gemmWorkspaceBytes)
	return c, nil
}

func (c *Backend) Name() string          { return "cuda" }
func (c *Backend) MasterWeights() bool   { return true }
func (c *Backend) Memory() *gpu.MemStats { return &c.mem }
func (c *Backend) Sync() error           { return c.dev.Sync() }

// Describe names the device for logs.
func (c *Backend) Describe() string {
	major, minor := c.dev.ComputeCapability()
	return fmt.Sprintf("cuda:%d %s (sm_%d%d, %.1f GiB)", c.dev.Ordinal(), c.dev.Name(), major, minor, float64(c.dev.TotalMem())/(1<<30))
}

// MemGetInfo is the driver's free and total device memory.
func (c *Backend) MemGetInfo() (free, total int64, err error) { return c.dev.MemGetInfo() }

func (c *Backend) Close() error {
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

// devMem is the storage of a CUDA tensor: the device address of its
// allocation.
type devMem uintptr

func (devMem) Owner() string { return "cuda" }

func elemBytes(p gpu.Precision) int64 {
	switch p {
	case gpu.Low:
		return 2
	case gpu.Code8:
		return 1
	}
	return 4
}

func dtypeOf(t *gpu.Tensor) dtype {
	if t.Prec == gpu.Low {
		return dtBF16
	}
	return dtF32
}

// addr is the device address of t's first element.
func addr(t *gpu.Tensor) uintptr {
	m, ok := t.Storage().(devMem)
	if !ok {
		what := "no storage (freed, or from a meter)"
		if s := t.Storage(); s != nil {
			what = "storage of the " + s.Owner() + " backend"
		}
		panic(fmt.Sprintf("cuda: tensor %s holds %s", t, what))
	}
	return uintptr(m) + uintptr(int64(t.Off)*elemBytes(t.Prec))
}

// low, full and ids are t's address as a kernel pointer of its element
// type, after checking that t has the precision the kernel wants.
func low(t *gpu.Tensor) devPtr[bf16] {
	check(t.Prec == gpu.Low, "%s: want a Low (bf16) tensor, precision %d", t, t.Prec)
	return devPtr[bf16](addr(t))
}

func full(t *gpu.Tensor) devPtr[float32] {
	check(t.Prec == gpu.Full, "%s: want a Full (fp32) tensor, precision %d", t, t.Prec)
	return devPtr[float32](addr(t))
}

func ids(t *gpu.Tensor) devPtr[int32] {
	check(t.Prec == gpu.Int32, "%s: want an Int32 tensor, precision %d", t, t.Prec)
	return devPtr[int32](addr(t))
}

func codes(t *gpu.Tensor) devPtr[uint8] {
	check(t.Prec == gpu.Code8, "%s: want a Code8 (8-bit codes) tensor, precision %d", t, t.Prec)
	return devPtr[uint8](addr(t))
}

// fullOrNil is full(t), or the null pointer for an optional tensor.
func fullOrNil(t *gpu.Tensor) devPtr[float32] {
	if t == nil {
		return 0
	}
	return full(t)
}

// check panics with a message naming the op when a contract is broken:
// ops have no error return, and a wrong tensor is a programming error.
func check(ok bool, format string, args ...any) {
	if !ok {
		panic("cuda: " + fmt.Sprintf(format, args...))
	}
}

// must panics on a CUDA error inside an op: ops have no error result, and
// a failed launch means a bug or a dead device, not bad input.
func must(err error) {
	if err != nil {
		panic(fmt.Sprintf("cuda: %v", err))
	}
}

// i32 is n as a C int kernel argument.
func i32(n int) int32 {
	if n > math.MaxInt32 || n < math.MinInt32 {
		panic(fmt.Sprintf("cuda: %d does not fit a 32-bit kernel argument", n))
	}
	return int32(n)
}

// rowsOf splits t into rows of its last dimension.
func rowsOf(t *gpu.Tensor) (N, C int) { return t.Len() / t.Dim(-1), t.Dim(-1) }

// ---- memory ----

// roundSize buckets allocation sizes so freed blocks are reusable.
func roundSize(n int64) int64 {
	const small = 512
	if n <= 1<<20 {
		return (n + small - 1) / small * small
	}
	const big = 2 << 20
	return (n + big - 1) / big * big
}

func (c *Backend) rawAlloc(bytes int64, cat gpu.Category) (uintptr, error) {
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

func (c *Backend) rawFree(p uintptr, bytes int64, cat gpu.Category) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pool[roundSize(bytes)] = append(c.pool[roundSize(bytes)], p)
	c.mem.Add(cat, -bytes)
}

// allocBytes is what a tensor of n elements of p takes (at least 1 byte,
// so every tensor has an address of its own).
func allocBytes(n int, p gpu.Precision) int64 { return max(int64(n)*elemBytes(p), 1) }

func (c *Backend) Alloc(name string, cat gpu.Category, p gpu.Precision, shape ...int) (*gpu.Tensor, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("cuda: alloc %s%v: negative dimension", name, shape)
		}
		n *= d
	}
	bytes := allocBytes(n, p)
	ptr, err := c.rawAlloc(bytes, cat)
	if err != nil {
		return nil, fmt.Errorf("allocating %s%v (%s, %d bytes): %w", name, shape, cat, bytes, err)
	}
	t := gpu.NewTensor(name, cat, p, shape, devMem(ptr))
	c.Zero(t)
	return t, nil
}

func (c *Backend) Free(t *gpu.Tensor) {
	if s, ok := t.Release().(devMem); ok && s != 0 {
		c.rawFree(uintptr(s), allocBytes(t.Len(), t.Prec), t.Cat)
	}
}

// scratchFloats returns a workspace of at least n floats, valid until the
// next call; growing it waits for queued work (it happens in the first step).
func (c *Backend) scratchFloats(n int64) devPtr[float32] {
	bytes := n * 4
	if bytes <= c.scratchBytes {
		return c.scratch
	}
	if c.scratch != 0 {
		must(c.dev.Sync())
		c.rawFree(uintptr(c.scratch), c.scratchBytes, gpu.Workspace)
	}
	p, err := c.rawAlloc(bytes, gpu.Workspace)
	must(err)
	c.scratch, c.scratchBytes = devPtr[float32](p), bytes
	return c.scratch
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

func (c *Backend) Upload(t *gpu.Tensor, src []float32) error {
	if len(src) != t.Len() {
		return fmt.Errorf("upload %s: %d values for %d elements", t, len(src), t.Len())
	}
	switch t.Prec {
	case gpu.Low:
		buf := make([]uint16, len(src))
		for i, v := range src {
			buf[i] = bf16FromFloat(v)
		}
		return c.dev.HtoD(addr(t), unsafe.Pointer(unsafe.SliceData(buf)), int64(len(buf))*2)
	case gpu.Full:
		return c.dev.HtoD(addr(t), unsafe.Pointer(unsafe.SliceData(src)), int64(len(src))*4)
	case gpu.Code8:
		buf := make([]uint8, len(src))
		for i, v := range src {
			if v < 0 || v > 255 || v != float32(int(v)) {
				return fmt.Errorf("upload %s: %g is not an 8-bit code (element %d)", t, v, i)
			}
			buf[i] = uint8(v)
		}
		return c.dev.HtoD(addr(t), unsafe.Pointer(unsafe.SliceData(buf)), int64(len(buf)))
	}
	return fmt.Errorf("upload %s: float values into an int32 tensor", t)
}

func (c *Backend) Download(t *gpu.Tensor) ([]float32, error) {
	out := make([]float32, t.Len())
	if len(out) == 0 {
		return out, nil
	}
	switch t.Prec {
	case gpu.Low:
		buf := make([]uint16, len(out))
		if err := c.dev.DtoH(unsafe.Pointer(unsafe.SliceData(buf)), addr(t), int64(len(buf))*2); err != nil {
			return nil, err
		}
		for i, h := range buf {
			out[i] = floatFromBF16(h)
		}
	case gpu.Full:
		if err := c.dev.DtoH(unsafe.Pointer(unsafe.SliceData(out)), addr(t), int64(len(out))*4); err != nil {
			return nil, err
		}
	case gpu.Code8:
		buf := make([]uint8, len(out))
		if err := c.dev.DtoH(unsafe.Pointer(unsafe.SliceData(buf)), addr(t), int64(len(buf))); err != nil {
			return nil, err
		}
		for i, v := range buf {
			out[i] = float32(v)
		}
	default:
		buf := make([]int32, len(out))
		if err := c.dev.DtoH(unsafe.Pointer(unsafe.SliceData(buf)), addr(t), int64(len(buf))*4); err != nil {
			return nil, err
		}
		for i, v := range buf {
			out[i] = float32(v)
		}
	}
	return out, nil
}

// DownloadF64 is Download widened: the device holds nothing wider than fp32.
func (c *Backend) DownloadF64(t *gpu.Tensor) ([]float64, error) {
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
func (c *Backend) UploadInt32(t *gpu.Tensor, src []int32) error {
	if t.Prec != gpu.Int32 || len(src) != t.Len() {
		return fmt.Errorf("upload %s: %d int32 values into %d elements of precision %d", t, len(src), t.Len(), t.Prec)
	}
	return c.dev.HtoDAsync(addr(t), unsafe.Pointer(unsafe.SliceData(src)), int64(len(src))*4)
}

func (c *Backend) Copy(dst, src *gpu.Tensor) error {
	if dst.Len() != src.Len() {
		return fmt.Errorf("copy %s to %s: lengths differ", src, dst)
	}
	n := int64(dst.Len())
	switch {
	case dst.Prec == src.Prec:
		return c.dev.DtoD(addr(dst), addr(src), n*elemBytes(dst.Prec))
	case dst.Prec == gpu.Low && src.Prec == gpu.Full:
		c.k.elementwise.toBF16.launch(low(dst), full(src), n)
	case dst.Prec == gpu.Full && src.Prec == gpu.Low:
		c.k.elementwise.toF32.launch(full(dst), low(src), n)
	default:
		return fmt.Errorf("copy %s to %s: int32, 8-bit and float tensors do not convert", src, dst)
	}
	return nil
}

func (c *Backend) Zero(t *gpu.Tensor) {
	if n := int64(t.Len()) * elemBytes(t.Prec); n > 0 {
		must(c.dev.MemsetD8(addr(t), 0, n))
	}
}

// ---- GEMM ----

func (c *Backend) Gemm(cc, a, b *gpu.Tensor, transA, transB bool, alpha, beta float32) {
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
		must(c.dev.Gemm(addr(cc), addr(a), addr(b), dtypeOf(cc), dtypeOf(a), dtypeOf(b), M, N, K, transA, transB, alpha, beta))
	})
}

func trans(t bool) string {
	if t {
		return "T"
	}
	return "N"
}

// onStream runs f on the device's thread, where its context is current,
// with the stream every kernel of this backend is queued on: for libraries
// that queue their own work in that order (NCCL, nccl.go).
func (c *Backend) onStream(f func(stream uintptr) error) error {
	return c.dev.Do(func() error {
		if err := c.dev.flushRecording(); err != nil { // the library's work follows the recorded work
			return err
		}
		return f(c.dev.Stream())
	})
}

// DeviceCount is the number of CUDA devices the driver sees; an error when
// there is no usable driver.
func DeviceCount() (int, error) { return deviceCount() }
