// Package cpu is the CPU reference backend: this file holds the Backend
// type, its constructors, allocation and memory accounting, host transfers,
// the parallel-for helper and Copy/Zero (Map is in mapop.go). The kernels live
// in the other files, one per concern (norm.go, attention.go, ...).
//
// The backend is generic over its element type so that the same code runs in
// float32 (the oracle for the CUDA backend, and small jobs) and in float64
// (gradient checks against finite differences). Low and Full are stored as
// T, Int32 as int32 and Code8 as bytes. Reductions accumulate in float64
// whatever T is, so float32 results differ from float64 ones only by
// rounding of inputs and outputs.
//
// Determinism: every output element is written by exactly one goroutine, which
// computes it in a fixed order; work is split into contiguous chunks that
// depend only on the problem size and the thread count.
package cpu

import (
	"errors"
	"fmt"
	"github.com/compact-llm/compact/internal/gpu"
	"runtime"
	"sync"
)

// Backend is the pure-Go backend with element type T.
type Backend[T float32 | float64] struct {
	threads int
	mem     gpu.MemStats
	// splitAll makes parallel ignore its grain so that tests exercise the
	// chunked code paths on tiny shapes.
	splitAll bool
	is64     bool // T is float64
	// sgemm is the float32 GEMM micro-kernel (the fastest this CPU runs);
	// nil fn: gonum's Sgemm.
	sgemm sgemmKernel
}

// New returns the float32 CPU backend using threads goroutines per op
// (threads <= 0: runtime.GOMAXPROCS).
func New(threads int) *Backend[float32] { return newBackend[float32](threads) }

// New64 returns the float64 CPU backend, used as the gradient-check
// reference.
func New64(threads int) *Backend[float64] { return newBackend[float64](threads) }

func newBackend[T float32 | float64](threads int) *Backend[T] {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	c := &Backend[T]{threads: threads, is64: is64[T]()}
	if ks := sgemmKernels(); len(ks) > 0 {
		c.sgemm = ks[0]
	}
	return c
}

// floats, int32s and codes are the storage of the CPU backend's tensors:
// Low and Full tensors hold T, Int32 tensors int32, Code8 tensors bytes.
type (
	floats[T float32 | float64] []T
	int32s                      []int32
	codes                       []uint8
)

func (floats[T]) Owner() string { return "cpu" }
func (int32s) Owner() string    { return "cpu" }
func (codes) Owner() string     { return "cpu" }

var _ gpu.Backend = (*Backend[float32])(nil)
var _ gpu.Backend = (*Backend[float64])(nil)

// is64 reports whether T is float64.
func is64[T float32 | float64]() bool {
	var z T
	_, ok := any(z).(float64)
	return ok
}

func (c *Backend[T]) Name() string {
	if is64[T]() {
		return "cpu-f64"
	}
	return "cpu"
}

// Threads is the number of goroutines an op may use.
func (c *Backend[T]) Threads() int { return c.threads }

func (c *Backend[T]) Memory() *gpu.MemStats { return &c.mem }
func (c *Backend[T]) Sync() error           { return nil }

// MasterWeights is false: CPU weights are already full precision.
func (c *Backend[T]) MasterWeights() bool { return false }
func (c *Backend[T]) Close() error        { return nil }

func (c *Backend[T]) elemBytes(p gpu.Precision) int64 {
	switch {
	case p == gpu.Code8:
		return 1
	case p == gpu.Int32 || !is64[T]():
		return 4
	}
	return 8
}

func (c *Backend[T]) Alloc(name string, cat gpu.Category, p gpu.Precision, shape ...int) (*gpu.Tensor, error) {
	if cat < 0 || cat >= gpu.NumCategories {
		return nil, fmt.Errorf("gpu/%s: alloc %s: bad category %d", c.Name(), name, int(cat))
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("gpu/%s: alloc %s%v: negative dimension", c.Name(), name, shape)
		}
		n *= d
	}
	var s gpu.Storage
	switch p {
	case gpu.Low, gpu.Full:
		s = make(floats[T], n)
	case gpu.Int32:
		s = make(int32s, n)
	case gpu.Code8:
		s = make(codes, n)
	default:
		return nil, fmt.Errorf("gpu/%s: alloc %s: bad precision %d", c.Name(), name, int(p))
	}
	c.mem.Add(cat, int64(n)*c.elemBytes(p))
	return gpu.NewTensor(name, cat, p, shape, s), nil
}

// Free releases t's accounting. Views and already freed tensors are ignored,
// so a double Free cannot corrupt the statistics.
func (c *Backend[T]) Free(t *gpu.Tensor) {
	if t.Release() != nil {
		c.mem.Add(t.Cat, -int64(t.Len())*c.elemBytes(t.Prec))
	}
}

// f returns t's elements (the view's window into the whole allocation).
func (c *Backend[T]) f(t *gpu.Tensor) []T {
	s, ok := t.Storage().(floats[T])
	if !ok {
		panic(fmt.Sprintf("gpu/%s: tensor %s holds %s, want %T (precision %d)", c.Name(), t, storageOf(t), s, t.Prec))
	}
	return s[t.Off : t.Off+t.Len()]
}

// ints returns the elements of an Int32 tensor.
func (c *Backend[T]) ints(t *gpu.Tensor) []int32 {
	s, ok := t.Storage().(int32s)
	if !ok {
		panic(fmt.Sprintf("gpu/%s: tensor %s holds %s, want int32", c.Name(), t, storageOf(t)))
	}
	return s[t.Off : t.Off+t.Len()]
}

// bytes returns the codes of a Code8 tensor.
func (c *Backend[T]) bytes(t *gpu.Tensor) []uint8 {
	s, ok := t.Storage().(codes)
	if !ok {
		panic(fmt.Sprintf("gpu/%s: tensor %s holds %s, want 8-bit codes", c.Name(), t, storageOf(t)))
	}
	return s[t.Off : t.Off+t.Len()]
}

// storageOf describes what t holds, for the panics of f, ints and bytes.
func storageOf(t *gpu.Tensor) string {
	switch s := t.Storage().(type) {
	case nil:
		return "no storage (freed, or from a meter)"
	case floats[float32], floats[float64], int32s, codes:
		return fmt.Sprintf("%T", s)
	default:
		return "storage of the " + s.Owner() + " backend"
	}
}

// check panics with a message naming the op when a shape contract is broken;
// ops have no error return, and a wrong shape is a programming error.
func check(ok bool, format string, args ...any) {
	if !ok {
		panic("gpu/cpu: " + fmt.Sprintf(format, args...))
	}
}

func checkLen(op string, t *gpu.Tensor, n int) {
	check(t.Len() == n, "%s: %s has %d elements, want %d", op, t, t.Len(), n)
}

// elemGrain is the smallest number of elementwise items worth a goroutine.
const elemGrain = 1 << 14

// rowGrain is the smallest number of rows of width cols worth a goroutine.
func rowGrain(cols int) int { return max(1, elemGrain/max(1, cols)) }

// parallel runs fn over [0, n) split into at most c.threads contiguous chunks
// of at least grain items. The split depends only on n, grain and the thread
// count, which keeps results reproducible.
func (c *Backend[T]) parallel(n, grain int, fn func(lo, hi int)) {
	if c.splitAll {
		grain = 1
	}
	parallelN(c.threads, n, grain, fn)
}

// parallelN is parallel for a given thread count.
func parallelN(threads, n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	grain = max(1, grain)
	workers := min(threads, (n+grain-1)/grain)
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(n*w/workers, n*(w+1)/workers)
	}
	fn(0, n/workers)
	wg.Wait()
}

func (c *Backend[T]) Upload(t *gpu.Tensor, src []float32) error { return upload(c, t, src, "float32") }

// UploadF64 sets t, a tensor of the CPU backend be, from float64 values,
// without rounding them to float32 on the float64 backend. It is not part
// of gpu.Backend: only gradient checks (tests) feed the reference backend
// float64 inputs.
func UploadF64(be gpu.Backend, t *gpu.Tensor, src []float64) error {
	switch c := be.(type) {
	case *Backend[float64]:
		return upload(c, t, src, "float64")
	case *Backend[float32]:
		return upload(c, t, src, "float64")
	}
	return fmt.Errorf("gpu/cpu: float64 upload into %s on the %s backend", t, be.Name())
}

// upload converts host values of either float type into t.
func upload[T, S float32 | float64](c *Backend[T], t *gpu.Tensor, src []S, what string) error {
	if t.Prec == gpu.Int32 {
		return fmt.Errorf("gpu/%s: upload %s into int32 tensor %s (use UploadInt32)", c.Name(), what, t)
	}
	if len(src) != t.Len() {
		return fmt.Errorf("gpu/%s: upload %d values into %s (%d elements)", c.Name(), len(src), t, t.Len())
	}
	if t.Prec == gpu.Code8 {
		return uploadCodes(c.bytes(t), src, t)
	}
	d := c.f(t)
	c.parallel(len(d), elemGrain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			d[i] = T(src[i])
		}
	})
	return nil
}

// uploadCodes stores code numbers 0..255 as bytes, refusing anything else.
func uploadCodes[S float32 | float64](d []uint8, src []S, t *gpu.Tensor) error {
	for i, v := range src {
		if v < 0 || v > 255 || v != S(int(v)) {
			return fmt.Errorf("gpu/cpu: upload %g into 8-bit codes %s (element %d)", float64(v), t, i)
		}
		d[i] = uint8(v)
	}
	return nil
}

func (c *Backend[T]) UploadInt32(t *gpu.Tensor, src []int32) error {
	if t.Prec != gpu.Int32 {
		return fmt.Errorf("gpu/%s: upload int32 into float tensor %s", c.Name(), t)
	}
	if len(src) != t.Len() {
		return fmt.Errorf("gpu/%s: upload %d values into %s (%d elements)", c.Name(), len(src), t, t.Len())
	}
	copy(c.ints(t), src)
	return nil
}

// Download returns t's elements as float32; an Int32 tensor's values are
// converted (exact below 2^24), which is handy for inspecting token ids, and
// a Code8 tensor's codes are their numbers.
func (c *Backend[T]) Download(t *gpu.Tensor) ([]float32, error) {
	if t.Storage() == nil {
		return nil, fmt.Errorf("gpu/%s: download %s: tensor freed or not allocated", c.Name(), t)
	}
	out := make([]float32, t.Len())
	switch t.Prec {
	case gpu.Int32:
		for i, v := range c.ints(t) {
			out[i] = float32(v)
		}
		return out, nil
	case gpu.Code8:
		for i, v := range c.bytes(t) {
			out[i] = float32(v)
		}
		return out, nil
	}
	for i, v := range c.f(t) {
		out[i] = float32(v)
	}
	return out, nil
}

func (c *Backend[T]) DownloadF64(t *gpu.Tensor) ([]float64, error) {
	if t.Storage() == nil {
		return nil, fmt.Errorf("gpu/%s: download %s: tensor freed or not allocated", c.Name(), t)
	}
	out := make([]float64, t.Len())
	switch t.Prec {
	case gpu.Int32:
		for i, v := range c.ints(t) {
			out[i] = float64(v)
		}
		return out, nil
	case gpu.Code8:
		for i, v := range c.bytes(t) {
			out[i] = float64(v)
		}
		return out, nil
	}
	for i, v := range c.f(t) {
		out[i] = float64(v)
	}
	return out, nil
}

// Copy copies src into dst. Low and Full are both T here, so there is no
// conversion; Int32 and Code8 tensors copy only into their own precision.
func (c *Backend[T]) Copy(dst, src *gpu.Tensor) error {
	if dst.Len() != src.Len() {
		return fmt.Errorf("gpu/%s: copy %s (%d elements) into %s (%d elements)", c.Name(), src, src.Len(), dst, dst.Len())
	}
	whole := func(p gpu.Precision) bool { return p == gpu.Int32 || p == gpu.Code8 }
	if (whole(dst.Prec) || whole(src.Prec)) && dst.Prec != src.Prec {
		return errors.New("gpu/" + c.Name() + ": copy between int32, 8-bit and float tensors " + src.String() + " -> " + dst.String())
	}
	switch dst.Prec {
	case gpu.Int32:
		copy(c.ints(dst), c.ints(src))
		return nil
	case gpu.Code8:
		copy(c.bytes(dst), c.bytes(src))
		return nil
	}
	d, s := c.f(dst), c.f(src)
	c.parallel(len(d), elemGrain, func(lo, hi int) { copy(d[lo:hi], s[lo:hi]) })
	return nil
}

func (c *Backend[T]) Zero(t *gpu.Tensor) {
	switch t.Prec {
	case gpu.Int32:
		clear(c.ints(t))
		return
	case gpu.Code8:
		clear(c.bytes(t))
		return
	}
	d := c.f(t)
	c.parallel(len(d), elemGrain, func(lo, hi int) { clear(d[lo:hi]) })
}
