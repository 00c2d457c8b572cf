//go:build linux && (amd64 || arm64)

package cuda

// Recording a training step's stream work instead of queuing it, so that
// graph.go can replay it as one CUDA graph. Every asynchronous stream
// operation of the device (kernel launches, GEMMs, async copies and
// memsets) goes through submit: queued at once normally, appended to the
// recording between BeginGraphStep and EndGraphStep. A call that waits for
// the device (Sync, a synchronous copy, Free, an event, NCCL's onStream)
// flushes the recording first, queuing what was recorded in order, and the
// rest of that step runs eagerly: the order of work on the stream is always
// the order the host issued it in.

import (
	"fmt"
	"math"
	"runtime"
	"unsafe"
)

// opKind is the kind of one recorded stream operation.
type opKind uint64

const (
	opLaunch   opKind = iota + 1 // cuLaunchKernel
	opGemm                       // cublasLtMatmul
	opHtoD                       // host to device through the pinned staging ring
	opDtoD                       // cuMemcpyDtoDAsync_v2
	opMemset8                    // cuMemsetD8Async
	opMemset32                   // cuMemsetD32Async
)

// streamOp is one asynchronous operation on the device's stream.
type streamOp struct {
	kind opKind
	// opLaunch
	fn    *function
	grid  dim3
	block dim3
	smem  uint32
	args  []kernelArg
	// opGemm
	gemm *gemmCall
	// copies and memsets
	dst, src uintptr
	n        int64  // bytes (copies, memset8) or 32-bit words (memset32)
	val      uint32 // memset value
	payload  []byte // opHtoD: the host bytes, copied when recorded
	host     unsafe.Pointer
}

// recording is the stream work of one step not queued yet.
type recording struct {
	ops []streamOp
	// key is the step's structure: every operation with everything that a
	// graph bakes in. Kernel arguments are not in it (graph.go patches the
	// ones that changed), nor the bytes of host-to-device copies (uploaded
	// before each replay), nor the GEMMs' alphas (kept in alphas).
	key    []uint64
	alphas []float32 // alpha of each GEMM, in order
	broken bool      // flushed by a synchronising call: the rest runs eagerly
}

func (r *recording) add(op streamOp) {
	k := []uint64{uint64(op.kind)}
	switch op.kind {
	case opLaunch:
		k = append(k, uint64(op.fn.h), pack(op.grid[0], op.grid[1]), pack(op.grid[2], op.block[0]),
			pack(op.block[1], op.block[2]), pack(op.smem, uint32(len(op.args))))
	case opGemm:
		g := op.gemm
		gk := g.key
		k = append(k, uint64(uintptr(unsafe.Pointer(g.plan))), pack(uint32(gk.M), uint32(gk.N)), pack(uint32(gk.K), gk.align),
			pack(uint32(gk.ct)|uint32(gk.at)<<8|uint32(gk.bt)<<16, uint32(b2i(gk.transA)|b2i(gk.transB)<<1)),
			uint64(g.a), uint64(g.b), uint64(g.c), uint64(math.Float32bits(g.scal[1])), uint64(g.ws), uint64(g.wsBytes))
		r.alphas = append(r.alphas, g.scal[0])
	case opHtoD:
		k = append(k, uint64(op.dst), uint64(op.n))
	case opDtoD:
		k = append(k, uint64(op.dst), uint64(op.src), uint64(op.n))
	case opMemset8, opMemset32:
		k = append(k, uint64(op.dst), uint64(op.n), uint64(op.val))
	}
	r.key = append(r.key, k...)
	r.ops = append(r.ops, op)
}

func pack(lo, hi uint32) uint64 { return uint64(lo) | uint64(hi)<<32 }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// submit queues op, or records it while a step is being recorded. Device
// thread only.
func (d *device) submit(op streamOp) error {
	if r := d.rec; r != nil && !r.broken {
		if op.kind == opLaunch {
			op.args = append([]kernelArg(nil), op.args...)
		}
		if op.kind == opHtoD { // the caller may reuse its buffer on return
			op.payload = append([]byte(nil), unsafe.Slice((*byte)(op.host), op.n)...)
			op.host = nil
		}
		r.add(op)
		return nil
	}
	return d.issue(&op)
}

// flushRecording queues what the current step recorded so far; the rest of
// the step runs eagerly. Device thread only; every synchronising call
// makes it first.
func (d *device) flushRecording() error {
	r := d.rec
	if r == nil || r.broken {
		return nil
	}
	r.broken = true
	ops := r.ops
	r.ops, r.key, r.alphas = nil, nil, nil
	return d.issueAll(ops)
}

func (d *device) issueAll(ops []streamOp) error {
	for i := range ops {
		if err := d.issue(&ops[i]); err != nil {
			return err
		}
	}
	return nil
}

// issue queues op on the stream (or into the graph being captured).
func (d *device) issue(op *streamOp) error {
	switch op.kind {
	case opLaunch:
		return d.launchNow(op)
	case opGemm:
		return d.matmulNow(op.gemm)
	case opHtoD:
		src := op.host
		if op.payload != nil {
			src = unsafe.Pointer(unsafe.SliceData(op.payload))
		}
		return d.stagedHtoD(op.dst, src, op.n)
	case opDtoD:
		return cuCheck(cu.MemcpyDtoDAsync(op.dst, op.src, uintptr(op.n), d.stream), "cuMemcpyDtoDAsync_v2(%d bytes)", op.n)
	case opMemset8:
		return cuCheck(cu.MemsetD8Async(op.dst, uint8(op.val), uintptr(op.n), d.stream), "cuMemsetD8Async(%d bytes)", op.n)
	case opMemset32:
		return cuCheck(cu.MemsetD32Async(op.dst, op.val, uintptr(op.n), d.stream), "cuMemsetD32Async(%d words)", op.n)
	}
	panic("cuda: unknown stream operation")
}

// kernelParams calls f with args as cuLaunchKernel's void** kernelParams
// (NULL when there are none), pinned for the call.
func kernelParams(args []kernelArg, f func(params unsafe.Pointer) cuResult) cuResult {
	if len(args) == 0 {
		return f(nil)
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	ptrs := make([]unsafe.Pointer, len(args))
	for i := range args {
		ptrs[i] = unsafe.Pointer(&args[i])
	}
	pin.Pin(&args[0])
	pin.Pin(&ptrs[0])
	return f(unsafe.Pointer(&ptrs[0]))
}

func (d *device) launchNow(op *streamOp) error {
	fn, grid, block := op.fn, op.grid, op.block
	if fn.m != nil && fn.m.h == 0 {
		return fmt.Errorf("cuda: Launch %s: module %s is unloaded", fn.name, fn.m.name)
	}
	r := kernelParams(op.args, func(params unsafe.Pointer) cuResult {
		return cu.LaunchKernel(fn.h, grid[0], grid[1], grid[2], block[0], block[1], block[2], op.smem, d.stream, params, nil)
	})
	return cuCheck(r, "cuLaunchKernel(%s grid=%v block=%v smem=%d)", fn.name, grid, block, op.smem)
}
