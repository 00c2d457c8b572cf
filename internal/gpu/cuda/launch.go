//go:build linux && (amd64 || arm64)

package cuda

// Kernel handles and typed launches. Every __global__ function of csrc/ has
// a handle, a field of one of the per-file kernel sets (elementwiseKernels
// in elementwise.go for csrc/elementwise.cu, and so on), resolved once when
// the backend opens. Its type carries a launch method whose parameters are
// the kernel's C parameters as Go types: device pointers typed by element
// (devPtr[bf16], devPtr[float32], devPtr[int32], devPtr[uint8] for unsigned
// char), int32 for int, int64 for long, uint32 for unsigned int. A call with
// a wrong argument list does not compile. Grids come from the device's real SM count; block sizes are
// stated once per kernel in its binding and checked against the compiled
// function's limit at load time. A launch passes each argument in the slot
// cuLaunchKernel reads it from (kernelArg), queued by device.Launch.

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unsafe"

	"github.com/compact-llm/compact/csrc"
)

// bf16 is the storage type of a Low element on the device.
type bf16 uint16

// elem is an element type a kernel pointer can point to.
type elem interface{ bf16 | float32 | int32 | uint8 }

// devPtr is a device address of elements of type E.
type devPtr[E elem] uintptr

func (p devPtr[E]) arg() kernelArg { return argPtr(uintptr(p)) }

// plus is the address n elements on.
func (p devPtr[E]) plus(n int) devPtr[E] {
	var e E
	return p + devPtr[E](uintptr(n)*unsafe.Sizeof(e))
}

// dim3 is a grid or block shape.
type dim3 = [3]uint32

// kernel is a resolved __global__ function and the block size its launcher
// uses.
type kernel struct {
	b     *Backend
	fn    *function
	block uint32
}

// run queues the kernel; only the typed launchers call it.
func (k kernel) run(grid dim3, smem uint32, args ...kernelArg) {
	k.b.timed(k.fn.name, func() { must(k.b.dev.Launch(k.fn, grid, dim3{k.block, 1, 1}, smem, args...)) })
}

// strided is the grid of a grid-stride kernel over items work items of
// perBlock each, capped at perSM blocks per multiprocessor: enough blocks
// to fill the device, and the loops inside cover the rest. Results of these
// kernels do not depend on the grid.
func (k kernel) strided(items, perBlock int64, perSM int) dim3 {
	g := (items + perBlock - 1) / perBlock
	g = min(g, int64(k.b.dev.MultiprocessorCount()*perSM))
	return dim3{uint32(max(g, 1)), 1, 1}
}

// elementwise is the grid of csrc's vectorised elementwise kernels: 8
// elements per thread, at most 16 blocks per SM (csrc/elementwise.cu).
func (k kernel) elementwise(n int64) dim3 { return k.strided(n, int64(k.block)*8, 16) }

// blocks is a grid of exactly n blocks (one per row, head, ...).
func blocks(n int) dim3 {
	if n < 1 || int64(n) > 1<<31-1 {
		panic(fmt.Sprintf("cuda: grid of %d blocks", n))
	}
	return dim3{uint32(n), 1, 1}
}

// binding names a kernel of a .cu file and the handle it fills.
type binding struct {
	name  string // the extern "C" name
	k     *kernel
	block uint32 // threads per block
}

// kernelFile is one csrc/*.cu file and its kernels.
type kernelFile struct {
	name     string
	bindings []binding
}

// kernels holds every kernel handle, one set per csrc file.
type kernels struct {
	elementwise elementwiseKernels
	encoder     encoderKernels
	rmsnorm     rmsnormKernels
	rope        ropeKernels
	attention   attentionKernels
	swiglu      swigluKernels
	loss        lossKernels
	reduce      reduceKernels
	optimizer   optimizerKernels
	projection  projectionKernels
	rounding    roundingKernels
	decode      decodeKernels
}

// files lists every csrc/*.cu with its bindings.
func (ks *kernels) files() []kernelFile {
	return []kernelFile{
		{"elementwise.cu", ks.elementwise.bindings()},
		{"encoder.cu", ks.encoder.bindings()},
		{"rmsnorm.cu", ks.rmsnorm.bindings()},
		{"rope.cu", ks.rope.bindings()},
		{"attention.cu", ks.attention.bindings()},
		{"swiglu.cu", ks.swiglu.bindings()},
		{"loss.cu", ks.loss.bindings()},
		{"reduce.cu", ks.reduce.bindings()},
		{"optimizer.cu", ks.optimizer.bindings()},
		{"projection.cu", ks.projection.bindings()},
		{"rounding.cu", ks.rounding.bindings()},
		{"decode.cu", ks.decode.bindings()},
	}
}

// loadKernels compiles every csrc file (cached on disk by NVRTC's key) and
// resolves each binding, refusing a block size the compiled kernel cannot
// run with on this device.
func (c *Backend) loadKernels() error {
	common, err := csrc.FS.ReadFile("common.cuh")
	if err != nil {
		return err
	}
	for _, f := range c.k.files() {
		src, err := csrc.FS.ReadFile(f.name)
		if err != nil {
			return err
		}
		// NVRTC gets common.cuh inline: no header search path to set up.
		full := strings.Replace(string(src), `#include "common.cuh"`, string(common), 1)
		mod, err := c.dev.CompileModule(f.name, full)
		if err != nil {
			return fmt.Errorf("kernel %s: %w", f.name, err)
		}
		for _, b := range f.bindings {
			fn, err := mod.Function(b.name)
			if err != nil {
				return fmt.Errorf("kernel %s: %w", f.name, err)
			}
			limit, err := fn.MaxThreadsPerBlock()
			if err != nil {
				return fmt.Errorf("kernel %s: %w", f.name, err)
			}
			limit = min(limit, c.dev.MaxThreadsPerBlock())
			if int(b.block) > limit {
				return fmt.Errorf("kernel %s in %s: launched with %d threads per block, the device allows %d", b.name, f.name, b.block, limit)
			}
			*b.k = kernel{b: c, fn: fn, block: b.block}
		}
	}
	return c.k.attention.prepare(c.dev) // dynamic shared memory of the pipelined variants
}

// kernelArg is one kernel parameter in the 8-byte slot cuLaunchKernel
// reads it from: a 4-byte C type sits in the slot's low half
// (little-endian). The constructors below are the only way to make one, so
// every argument has the C size its launcher states.
type kernelArg uint64

func argPtr(p uintptr) kernelArg { return kernelArg(p) }
func argI32(v int32) kernelArg   { return kernelArg(uint32(v)) }
func argU32(v uint32) kernelArg  { return kernelArg(v) }
func argF32(v float32) kernelArg { return kernelArg(math.Float32bits(v)) }
func argI64(v int64) kernelArg   { return kernelArg(v) }
func argU64(v uint64) kernelArg  { return kernelArg(v) }
func argF64(v float64) kernelArg { return kernelArg(math.Float64bits(v)) }

// argBool is a C int flag: 1 for true, 0 for false.
func argBool(v bool) kernelArg {
	if v {
		return 1
	}
	return 0
}

// Launch queues fn on the stream with the given grid, block and dynamic
// shared memory (or records it, record.go). args are the kernel's
// parameters in order; cuLaunchKernel gets an array of pointers to them and
// copies the values before returning.
func (d *device) Launch(fn *function, grid, block [3]uint32, sharedMem uint32, args ...kernelArg) error {
	if fn == nil || fn.h == 0 {
		return errors.New("cuda: Launch: nil or unloaded function")
	}
	return d.Do(func() error {
		return d.submit(streamOp{kind: opLaunch, fn: fn, grid: grid, block: block, smem: sharedMem, args: args})
	})
}
