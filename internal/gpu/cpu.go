// CPU reference backend: the CPU type, its constructors, allocation and
// memory accounting, host transfers, the parallel-for helper and the simple
// elementwise ops. The kernels live in the other cpu_*.go files.
//
// The backend is generic over its element type so that the same code runs in
// float32 (the oracle for the CUDA backend, and small jobs) and in float64
// (gradient checks against finite differences). Every Precision except Int32
// is stored as T. Reductions accumulate in float64 whatever T is, so float32
// results differ from float64 ones only by rounding of inputs and outputs.
//
// Determinism: every output element is written by exactly one goroutine, which
// computes it in a fixed order; work is split into contiguous chunks that
// depend only on the problem size and the thread count.
package gpu

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
)

// CPU is the pure-Go backend with element type T.
type CPU[T float32 | float64] struct {
	threads int
	mem     MemStats
	// splitAll makes parallel ignore its grain so that tests exercise the
	// chunked code paths on tiny shapes.
	splitAll bool
	is64     bool // T is float64
	// sgemm is the float32 GEMM micro-kernel (the fastest this CPU runs);
	// nil fn: gonum's Sgemm.
	sgemm sgemmKernel
}

// NewCPU returns the float32 CPU backend using threads goroutines per op
// (threads <= 0: runtime.GOMAXPROCS).
func NewCPU(threads int) *CPU[float32] { return newCPU[float32](threads) }

// NewCPU64 returns the float64 CPU backend, used as the gradient-check
// reference.
func NewCPU64(threads int) *CPU[float64] { return newCPU[float64](threads) }

func newCPU[T float32 | float64](threads int) *CPU[T] {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	c := &CPU[T]{threads: threads, is64: is64[T]()}
	if ks := sgemmKernels(); len(ks) > 0 {
		c.sgemm = ks[0]
	}
	return c
}

var _ Backend = (*CPU[float32])(nil)
var _ Backend = (*CPU[float64])(nil)

// is64 reports whether T is float64.
func is64[T float32 | float64]() bool {
	var z T
	_, ok := any(z).(float64)
	return ok
}

func (c *CPU[T]) Name() string {
	if is64[T]() {
		return "cpu-f64"
	}
	return DeviceCPU
}

// Threads is the number of goroutines an op may use.
func (c *CPU[T]) Threads() int { return c.threads }

func (c *CPU[T]) Memory() *MemStats { return &c.mem }
func (c *CPU[T]) Sync() error       { return nil }

// MasterWeights is false: CPU weights are already full precision.
func (c *CPU[T]) MasterWeights() bool { return false }
func (c *CPU[T]) Close() error        { return nil }

func (c *CPU[T]) elemBytes(p Precision) int64 {
	if p == Int32 || !is64[T]() {
		return 4
	}
	return 8
}

func (c *CPU[T]) Alloc(name string, cat Category, p Precision, shape ...int) (*Tensor, error) {
	if cat < 0 || cat >= NumCategories {
		return nil, fmt.Errorf("gpu/%s: alloc %s: bad category %d", c.Name(), name, int(cat))
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("gpu/%s: alloc %s%v: negative dimension", c.Name(), name, shape)
		}
		n *= d
	}
	t := &Tensor{Name: name, Shape: append([]int(nil), shape...), Prec: p, Cat: cat}
	switch p {
	case Low, Full:
		t.Storage = make([]T, n)
	case Int32:
		t.Storage = make([]int32, n)
	default:
		return nil, fmt.Errorf("gpu/%s: alloc %s: bad precision %d", c.Name(), name, int(p))
	}
	c.mem.Add(cat, int64(n)*c.elemBytes(p))
	return t, nil
}

// Free releases t's accounting. Views and already freed tensors are ignored,
// so a double Free cannot corrupt the statistics.
func (c *CPU[T]) Free(t *Tensor) {
	if t == nil || t.view || t.Storage == nil {
		return
	}
	c.mem.Add(t.Cat, -int64(t.Len())*c.elemBytes(t.Prec))
	t.Storage = nil
}

// f returns t's elements (the view's window into the whole allocation).
func (c *CPU[T]) f(t *Tensor) []T {
	s, ok := t.Storage.([]T)
	if !ok {
		panic(fmt.Sprintf("gpu/%s: tensor %s holds %T, want %T (precision %d)", c.Name(), t, t.Storage, s, t.Prec))
	}
	return s[t.Off : t.Off+t.Len()]
}

// ints returns the elements of an Int32 tensor.
func (c *CPU[T]) ints(t *Tensor) []int32 {
	s, ok := t.Storage.([]int32)
	if !ok {
		panic(fmt.Sprintf("gpu/%s: tensor %s holds %T, want []int32", c.Name(), t, t.Storage))
	}
	return s[t.Off : t.Off+t.Len()]
}

// check panics with a message naming the op when a shape contract is broken;
// ops have no error return, and a wrong shape is a programming error.
func check(ok bool, format string, args ...any) {
	if !ok {
		panic("gpu/cpu: " + fmt.Sprintf(format, args...))
	}
}

func checkLen(op string, t *Tensor, n int) {
	check(t.Len() == n, "%s: %s has %d elements, want %d", op, t, t.Len(), n)
}

// elemGrain is the smallest number of elementwise items worth a goroutine.
const elemGrain = 1 << 14

// rowGrain is the smallest number of rows of width cols worth a goroutine.
func rowGrain(cols int) int { return max(1, elemGrain/max(1, cols)) }

// parallel runs fn over [0, n) split into at most c.threads contiguous chunks
// of at least grain items. The split depends only on n, grain and the thread
// count, which keeps results reproducible.
func (c *CPU[T]) parallel(n, grain int, fn func(lo, hi int)) {
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

func (c *CPU[T]) Upload(t *Tensor, src []float32) error { return upload(c, t, src, "float32") }

func (c *CPU[T]) UploadF64(t *Tensor, src []float64) error { return upload(c, t, src, "float64") }

// upload converts host values of either float type into t.
func upload[T, S float32 | float64](c *CPU[T], t *Tensor, src []S, what string) error {
	if t.Prec == Int32 {
		return fmt.Errorf("gpu/%s: upload %s into int32 tensor %s (use UploadInt32)", c.Name(), what, t)
	}
	if len(src) != t.Len() {
		return fmt.Errorf("gpu/%s: upload %d values into %s (%d elements)", c.Name(), len(src), t, t.Len())
	}
	d := c.f(t)
	c.parallel(len(d), elemGrain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			d[i] = T(src[i])
		}
	})
	return nil
}

func (c *CPU[T]) UploadInt32(t *Tensor, src []int32) error {
	if t.Prec != Int32 {
		return fmt.Errorf("gpu/%s: upload int32 into float tensor %s", c.Name(), t)
	}
	if len(src) != t.Len() {
		return fmt.Errorf("gpu/%s: upload %d values into %s (%d elements)", c.Name(), len(src), t, t.Len())
	}
	copy(c.ints(t), src)
	return nil
}

// Download returns t's elements as float32; an Int32 tensor's values are
// converted (exact below 2^24), which is handy for inspecting token ids.
func (c *CPU[T]) Download(t *Tensor) ([]float32, error) {
	if t.Storage == nil {
		return nil, fmt.Errorf("gpu/%s: download %s: tensor freed or not allocated", c.Name(), t)
	}
	out := make([]float32, t.Len())
	if t.Prec == Int32 {
		for i, v := range c.ints(t) {
			out[i] = float32(v)
		}
		return out, nil
	}
	for i, v := range c.f(t) {
		out[i] = float32(v)
	}
	return out, nil
}

func (c *CPU[T]) DownloadF64(t *Tensor) ([]float64, error) {
	if t.Storage == nil {
		return nil, fmt.Errorf("gpu/%s: download %s: tensor freed or not allocated", c.Name(), t)
	}
	out := make([]float64, t.Len())
	if t.Prec == Int32 {
		for i, v := range c.ints(t) {
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
// conversion; copying between an Int32 and a float tensor is refused.
func (c *CPU[T]) Copy(dst, src *Tensor) error {
	if dst.Len() != src.Len() {
		return fmt.Errorf("gpu/%s: copy %s (%d elements) into %s (%d elements)", c.Name(), src, src.Len(), dst, dst.Len())
	}
	if (dst.Prec == Int32) != (src.Prec == Int32) {
		return errors.New("gpu/" + c.Name() + ": copy between int32 and float tensors " + src.String() + " -> " + dst.String())
	}
	if dst.Prec == Int32 {
		copy(c.ints(dst), c.ints(src))
		return nil
	}
	d, s := c.f(dst), c.f(src)
	c.parallel(len(d), elemGrain, func(lo, hi int) { copy(d[lo:hi], s[lo:hi]) })
	return nil
}

func (c *CPU[T]) Zero(t *Tensor) {
	if t.Prec == Int32 {
		clear(c.ints(t))
		return
	}
	d := c.f(t)
	c.parallel(len(d), elemGrain, func(lo, hi int) { clear(d[lo:hi]) })
}

func (c *CPU[T]) Add(out, a, b *Tensor) {
	n := out.Len()
	checkLen("Add", a, n)
	checkLen("Add", b, n)
	o, x, y := c.f(out), c.f(a), c.f(b)
	c.parallel(n, elemGrain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			o[i] = x[i] + y[i]
		}
	})
}

func (c *CPU[T]) Axpy(y, x *Tensor, alpha float32) {
	checkLen("Axpy", x, y.Len())
	yd, xd, a := c.f(y), c.f(x), T(alpha)
	c.parallel(len(yd), elemGrain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			yd[i] += a * xd[i]
		}
	})
}

func (c *CPU[T]) Scale(x *Tensor, alpha float32) {
	xd, a := c.f(x), T(alpha)
	c.parallel(len(xd), elemGrain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xd[i] *= a
		}
	})
}
