//go:build linux && (amd64 || arm64)

// CUDA driver API binding: device owns one GPU through its primary
// context, one OS-locked thread that makes every CUDA call, one non-blocking
// stream, and the NVRTC and cuBLASLt state built on top of them. Memory,
// copies, memsets, kernel launches and events live here.
package cuda

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// cuResult is CUresult (cuda.h, enum cudaError_enum).
type cuResult int32

// Values from cuda.h (CUDA 13.0). CUresult: enum cudaError_enum.
const (
	cudaSuccess           cuResult = 0   // CUDA_SUCCESS
	cudaErrorInvalidValue cuResult = 1   // CUDA_ERROR_INVALID_VALUE
	cudaErrorOutOfMemory  cuResult = 2   // CUDA_ERROR_OUT_OF_MEMORY
	cudaErrorNoDevice     cuResult = 100 // CUDA_ERROR_NO_DEVICE
	cudaErrorInvalidImage cuResult = 200 // CUDA_ERROR_INVALID_IMAGE
)

// cuda.h: enum CUdevice_attribute_enum.
const (
	cuDevAttrMaxThreadsPerBlock         int32 = 1  // CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK
	cuDevAttrMultiprocessorCount        int32 = 16 // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
	cuDevAttrComputeCapabilityMajor     int32 = 75 // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
	cuDevAttrComputeCapabilityMinor     int32 = 76 // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
	cuDevAttrMaxSharedMemPerBlockOptin  int32 = 97 // CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
	cuFuncAttrMaxThreadsPerBlock        int32 = 0  // cuda.h CUfunction_attribute: CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK
	cuFuncAttrNumRegs                   int32 = 4  // CU_FUNC_ATTRIBUTE_NUM_REGS
	cuFuncAttrMaxDynamicSharedSizeBytes int32 = 8  // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
)

// cuda.h: CUstream_flags_enum and CUevent_flags_enum.
const (
	cuStreamNonBlocking uint32 = 0x1 // CU_STREAM_NON_BLOCKING
	cuEventDefault      uint32 = 0x0 // CU_EVENT_DEFAULT (timing enabled)
	cuEventNoTiming     uint32 = 0x2 // CU_EVENT_DISABLE_TIMING (cheapest to record and wait on)
	cuEventWaitDefault  uint32 = 0x0 // CU_EVENT_WAIT_DEFAULT (CUevent_wait_flags_enum)
)

// cu holds the driver entry points. Handles (CUcontext, CUstream, CUmodule,
// CUfunction, CUevent) are pointers and CUdeviceptr is unsigned long long:
// all uintptr here. CUdevice is int. Names are the ones cuda.h's #defines map
// to in CUDA 13 (cuMemAlloc -> cuMemAlloc_v2 and so on); the prototype of
// each is the one in cuda.h.
var cu struct {
	Init                    func(flags uint32) cuResult                                  // cuInit(unsigned int)
	DriverGetVersion        func(v *int32) cuResult                                      // cuDriverGetVersion(int*)
	DeviceGetCount          func(n *int32) cuResult                                      // cuDeviceGetCount(int*)
	DeviceGet               func(dev *int32, ordinal int32) cuResult                     // cuDeviceGet(CUdevice*, int)
	DeviceGetName           func(name *byte, n int32, dev int32) cuResult                // cuDeviceGetName(char*, int, CUdevice)
	DeviceTotalMem          func(bytes *uintptr, dev int32) cuResult                     // cuDeviceTotalMem_v2(size_t*, CUdevice)
	DeviceGetAttribute      func(v *int32, attr int32, dev int32) cuResult               // cuDeviceGetAttribute(int*, CUdevice_attribute, CUdevice)
	DevicePrimaryCtxRetain  func(ctx *uintptr, dev int32) cuResult                       // cuDevicePrimaryCtxRetain(CUcontext*, CUdevice)
	DevicePrimaryCtxRelease func(dev int32) cuResult                                     // cuDevicePrimaryCtxRelease_v2(CUdevice)
	CtxSetCurrent           func(ctx uintptr) cuResult                                   // cuCtxSetCurrent(CUcontext)
	StreamCreate            func(stream *uintptr, flags uint32) cuResult                 // cuStreamCreate(CUstream*, unsigned int)
	StreamDestroy           func(stream uintptr) cuResult                                // cuStreamDestroy_v2(CUstream)
	StreamSynchronize       func(stream uintptr) cuResult                                // cuStreamSynchronize(CUstream)
	MemAlloc                func(dptr *uintptr, bytes uintptr) cuResult                  // cuMemAlloc_v2(CUdeviceptr*, size_t)
	MemFree                 func(dptr uintptr) cuResult                                  // cuMemFree_v2(CUdeviceptr)
	MemGetInfo              func(free, total *uintptr) cuResult                          // cuMemGetInfo_v2(size_t*, size_t*)
	MemHostAlloc            func(pp *unsafe.Pointer, n uintptr, flags uint32) cuResult   // cuMemHostAlloc(void**, size_t, unsigned int)
	MemFreeHost             func(p unsafe.Pointer) cuResult                              // cuMemFreeHost(void*)
	MemcpyHtoDAsync         func(dst uintptr, src unsafe.Pointer, n, s uintptr) cuResult // cuMemcpyHtoDAsync_v2(CUdeviceptr, const void*, size_t, CUstream)
	MemcpyDtoHAsync         func(dst unsafe.Pointer, src uintptr, n, s uintptr) cuResult // cuMemcpyDtoHAsync_v2(void*, CUdeviceptr, size_t, CUstream)
	MemcpyDtoDAsync         func(dst, src uintptr, n, s uintptr) cuResult                // cuMemcpyDtoDAsync_v2(CUdeviceptr, CUdeviceptr, size_t, CUstream)
	MemsetD8Async           func(dst uintptr, v uint8, n, s uintptr) cuResult            // cuMemsetD8Async(CUdeviceptr, unsigned char, size_t, CUstream)
	MemsetD32Async          func(dst uintptr, v uint32, n, s uintptr) cuResult           // cuMemsetD32Async(CUdeviceptr, unsigned int, size_t, CUstream)
	ModuleLoadData          func(mod *uintptr, image unsafe.Pointer) cuResult            // cuModuleLoadData(CUmodule*, const void*)
	ModuleUnload            func(mod uintptr) cuResult                                   // cuModuleUnload(CUmodule)
	ModuleGetFunction       func(fn *uintptr, mod uintptr, name *byte) cuResult          // cuModuleGetFunction(CUfunction*, CUmodule, const char*)
	FuncSetAttribute        func(fn uintptr, attr int32, value int32) cuResult           // cuFuncSetAttribute(CUfunction, CUfunction_attribute, int)
	FuncGetAttribute        func(v *int32, attr int32, fn uintptr) cuResult              // cuFuncGetAttribute(int*, CUfunction_attribute, CUfunction)
	EventCreate             func(ev *uintptr, flags uint32) cuResult                     // cuEventCreate(CUevent*, unsigned int)
	EventRecord             func(ev, stream uintptr) cuResult                            // cuEventRecord(CUevent, CUstream)
	EventSynchronize        func(ev uintptr) cuResult                                    // cuEventSynchronize(CUevent)
	StreamWaitEvent         func(stream, ev uintptr, flags uint32) cuResult              // cuStreamWaitEvent(CUstream, CUevent, unsigned int)
	EventElapsedTime        func(ms *float32, start, end uintptr) cuResult               // cuEventElapsedTime_v2(float*, CUevent, CUevent)
	EventDestroy            func(ev uintptr) cuResult                                    // cuEventDestroy_v2(CUevent)
	GetErrorName            func(code cuResult, s **byte) cuResult                       // cuGetErrorName(CUresult, const char**)
	GetErrorString          func(code cuResult, s **byte) cuResult                       // cuGetErrorString(CUresult, const char**)
	LaunchKernel            func(f uintptr, gx, gy, gz, bx, by, bz, shmem uint32, s uintptr, params, extra unsafe.Pointer) cuResult
	// cuLaunchKernel(CUfunction f, unsigned int gridDimX, gridDimY, gridDimZ,
	// unsigned int blockDimX, blockDimY, blockDimZ, unsigned int sharedMemBytes,
	// CUstream hStream, void **kernelParams, void **extra)

	eventElapsedName string // which symbol EventElapsedTime is bound to
	lib              *cudaLib
	version          int32 // cuDriverGetVersion, e.g. 13000
}

var (
	cuLoadOnce sync.Once
	cuLoadErr  error // library or symbol missing
	cuInitErr  error // cuInit failed
)

// loadDriver dlopens libcuda, binds it and calls cuInit(0), once per process.
func loadDriver() error {
	cuLoadOnce.Do(func() {
		lib, err := findLibrary("the CUDA driver library", cudaDriverLibNames)
		if err != nil {
			cuLoadErr = err
			return
		}
		b := &cudaBinder{lib: lib}
		b.fn(&cu.Init, "cuInit")
		b.fn(&cu.DriverGetVersion, "cuDriverGetVersion")
		b.fn(&cu.DeviceGetCount, "cuDeviceGetCount")
		b.fn(&cu.DeviceGet, "cuDeviceGet")
		b.fn(&cu.DeviceGetName, "cuDeviceGetName")
		b.fn(&cu.DeviceTotalMem, "cuDeviceTotalMem_v2")
		b.fn(&cu.DeviceGetAttribute, "cuDeviceGetAttribute")
		b.fn(&cu.DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain")
		b.fn(&cu.DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2")
		b.fn(&cu.CtxSetCurrent, "cuCtxSetCurrent")
		b.fn(&cu.StreamCreate, "cuStreamCreate")
		b.fn(&cu.StreamDestroy, "cuStreamDestroy_v2")
		b.fn(&cu.StreamSynchronize, "cuStreamSynchronize")
		b.fn(&cu.MemAlloc, "cuMemAlloc_v2")
		b.fn(&cu.MemFree, "cuMemFree_v2")
		b.fn(&cu.MemGetInfo, "cuMemGetInfo_v2")
		b.fn(&cu.MemHostAlloc, "cuMemHostAlloc")
		b.fn(&cu.MemFreeHost, "cuMemFreeHost")
		b.fn(&cu.MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2")
		b.fn(&cu.MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2")
		b.fn(&cu.MemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2")
		b.fn(&cu.MemsetD8Async, "cuMemsetD8Async")
		b.fn(&cu.MemsetD32Async, "cuMemsetD32Async")
		b.fn(&cu.ModuleLoadData, "cuModuleLoadData")
		b.fn(&cu.ModuleUnload, "cuModuleUnload")
		b.fn(&cu.ModuleGetFunction, "cuModuleGetFunction")
		b.fn(&cu.FuncSetAttribute, "cuFuncSetAttribute")
		b.fn(&cu.FuncGetAttribute, "cuFuncGetAttribute")
		b.fn(&cu.LaunchKernel, "cuLaunchKernel")
		b.fn(&cu.EventCreate, "cuEventCreate")
		b.fn(&cu.EventRecord, "cuEventRecord")
		b.fn(&cu.EventSynchronize, "cuEventSynchronize")
		b.fn(&cu.StreamWaitEvent, "cuStreamWaitEvent")
		b.fn(&cu.EventDestroy, "cuEventDestroy_v2")
		b.fn(&cu.GetErrorName, "cuGetErrorName")
		b.fn(&cu.GetErrorString, "cuGetErrorString")
		// CUDA 13's cuda.h maps cuEventElapsedTime to _v2 (same prototype);
		// drivers older than 12.8 only have the original.
		cu.eventElapsedName = "cuEventElapsedTime_v2"
		if !b.optional(&cu.EventElapsedTime, cu.eventElapsedName) {
			cu.eventElapsedName = "cuEventElapsedTime"
			b.fn(&cu.EventElapsedTime, cu.eventElapsedName)
		}
		bindGraphs(b)
		if b.err != nil {
			cuLoadErr = b.err
			return
		}
		cu.lib = lib
		if r := cu.Init(0); r != cudaSuccess {
			cuInitErr = newCudaError("cuInit(0)", r)
			return
		}
		if r := cu.DriverGetVersion(&cu.version); r != cudaSuccess {
			cuInitErr = newCudaError("cuDriverGetVersion", r)
		}
	})
	if cuLoadErr != nil {
		return cuLoadErr
	}
	return cuInitErr
}

// deviceCount loads the driver, initialises it and returns the number of
// CUDA devices. It fails (never panics) when libcuda is missing or cuInit
// fails, e.g. with CUDA_ERROR_NO_DEVICE on a machine without a GPU.
func deviceCount() (int, error) {
	if err := loadDriver(); err != nil {
		return 0, err
	}
	var n int32
	if r := cu.DeviceGetCount(&n); r != cudaSuccess {
		return 0, newCudaError("cuDeviceGetCount", r)
	}
	return int(n), nil
}

// cudaError is a failed CUDA driver call.
type cudaError struct {
	Op   string // the call and its salient arguments
	Code int    // CUresult
}

func (e *cudaError) Error() string { return e.Op + ": " + cudaErrorString(cuResult(e.Code)) }

// IsOutOfMemory reports whether err is (or wraps) CUDA_ERROR_OUT_OF_MEMORY.
func (e *cudaError) IsOutOfMemory() bool { return cuResult(e.Code) == cudaErrorOutOfMemory }

// isOutOfMemory reports whether err wraps a CUDA_ERROR_OUT_OF_MEMORY.
func isOutOfMemory(err error) bool {
	var ce *cudaError
	return errors.As(err, &ce) && ce.IsOutOfMemory()
}

func newCudaError(op string, r cuResult) error { return &cudaError{Op: op, Code: int(r)} }

// check turns a CUresult into an error naming op (a format string).
func cuCheck(r cuResult, format string, args ...any) error {
	if r == cudaSuccess {
		return nil
	}
	return newCudaError(fmt.Sprintf(format, args...), r)
}

// cudaErrorString renders a CUresult as "NAME: description" using
// cuGetErrorName and cuGetErrorString, e.g.
// "CUDA_ERROR_OUT_OF_MEMORY: out of memory".
func cudaErrorString(code cuResult) string {
	if cu.GetErrorName == nil || cu.GetErrorString == nil {
		return fmt.Sprintf("CUresult %d", int(code))
	}
	var name, desc *byte
	if cu.GetErrorName(code, &name) != cudaSuccess || name == nil {
		return fmt.Sprintf("CUresult %d (unknown to this driver)", int(code))
	}
	s := cudaGoString(name)
	if cu.GetErrorString(code, &desc) == cudaSuccess && desc != nil {
		s += ": " + cudaGoString(desc)
	}
	return s
}

// errCudaClosed is returned by calls on a closed device.
var errCudaClosed = errors.New("cuda: device is closed")

// device is one GPU: its primary context, a locked OS thread that makes
// every CUDA call for it, one non-blocking stream, NVRTC and a cuBLASLt
// handle. Methods are safe for concurrent use; work is serialised on the
// device thread and ordered on the one stream.
type device struct {
	ordinal      int
	dev          int32 // CUdevice
	ctx          uintptr
	stream       uintptr
	name         string
	major, minor int
	totalMem     int64
	smCount      int
	maxThreads   int
	smemOptin    int

	tid     int           // OS thread id of the device thread
	mu      sync.Mutex    // orders closed against enqueueing
	closed  bool          // under mu: no more jobs are accepted
	work    chan *cudaJob // jobs for the device thread
	stopped chan struct{} // closed when the device thread has exited
	exiting bool          // device thread only: leave the loop after this job

	modules []*module     // device thread only
	blas    cublasLtState // device thread only
	staging hostStaging   // device thread only: pinned buffers of HtoDAsync
	rec     *recording    // device thread only: the step being recorded (record.go)
	graphs  graphCache    // device thread only: captured steps (graph.go)
}

// openDevice opens GPU ordinal: cuInit, cuDeviceGet, retains the primary
// context and makes it current on a new locked OS thread, creates a
// non-blocking stream and a cuBLASLt handle. NVRTC and cuBLASLt are loaded
// too, so a missing library fails here with a message naming it.
func openDevice(ordinal int) (*device, error) {
	n, err := deviceCount()
	if err != nil {
		return nil, err
	}
	if ordinal < 0 || ordinal >= n {
		return nil, fmt.Errorf("cuda: device %d does not exist (%d devices)", ordinal, n)
	}
	if err := loadNVRTC(); err != nil {
		return nil, err
	}
	if err := loadCublasLt(); err != nil {
		return nil, err
	}
	d := &device{ordinal: ordinal, work: make(chan *cudaJob, 64), stopped: make(chan struct{})}
	ready := make(chan error, 1)
	go d.loop(ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return d, nil
}

// loop is the device thread. It never unlocks its OS thread: when it returns
// the Go runtime ends the thread, and the context binding with it.
func (d *device) loop(ready chan<- error) {
	runtime.LockOSThread()
	defer close(d.stopped)
	d.tid = syscall.Gettid()
	if err := d.init(); err != nil {
		ready <- errors.Join(err, d.release())
		return
	}
	ready <- nil
	for !d.exiting {
		d.nextJob().run()
	}
}

// cudaSpin is how long the device thread polls for the next job, and a
// caller polls for its job's completion, before sleeping. Waking a sleeping
// locked thread costs tens of microseconds per hand-off; polling a little
// keeps back-to-back calls cheap at the price of some CPU time.
var cudaSpin atomic.Int64 // nanoseconds

func init() { cudaSpin.Store(int64(50 * time.Microsecond)) }

// nextJob returns the next job, polling for cudaSpin before blocking.
func (d *device) nextJob() *cudaJob {
	select {
	case j := <-d.work:
		return j
	default:
	}
	if spin := time.Duration(cudaSpin.Load()); spin > 0 {
		deadline := time.Now().Add(spin)
		for i := 0; ; i++ {
			select {
			case j := <-d.work:
				return j
			default:
			}
			if i%32 == 31 && time.Now().After(deadline) {
				break
			}
		}
	}
	return <-d.work
}

// cudaJob is one Do call in flight. state: 0 running, 1 done, 2 the caller
// sleeps on wake.
type cudaJob struct {
	f     func() error
	err   error
	state atomic.Int32
	wake  chan struct{}
}

func (j *cudaJob) run() {
	j.err = cudaSafeRun(j.f)
	if !j.state.CompareAndSwap(0, 1) { // the caller went to sleep
		j.wake <- struct{}{}
	}
}

func (j *cudaJob) wait() error {
	if spin := time.Duration(cudaSpin.Load()); spin > 0 {
		deadline := time.Now().Add(spin)
		for i := 0; ; i++ {
			if j.state.Load() == 1 {
				return j.err
			}
			if i%32 == 31 && time.Now().After(deadline) {
				break
			}
		}
	}
	j.wake = make(chan struct{}, 1)
	if !j.state.CompareAndSwap(0, 2) { // finished meanwhile
		return j.err
	}
	<-j.wake
	return j.err
}

// init runs on the device thread.
func (d *device) init() error {
	if r := cu.DeviceGet(&d.dev, int32(d.ordinal)); r != cudaSuccess {
		return newCudaError(fmt.Sprintf("cuDeviceGet(%d)", d.ordinal), r)
	}
	buf := make([]byte, 256)
	if r := cu.DeviceGetName(&buf[0], int32(len(buf)), d.dev); r != cudaSuccess {
		return newCudaError("cuDeviceGetName", r)
	}
	d.name = cudaGoStringBuf(buf)
	attr := func(a int32, what string) (int, error) {
		var v int32
		if r := cu.DeviceGetAttribute(&v, a, d.dev); r != cudaSuccess {
			return 0, newCudaError("cuDeviceGetAttribute("+what+")", r)
		}
		return int(v), nil
	}
	var err error
	if d.major, err = attr(cuDevAttrComputeCapabilityMajor, "COMPUTE_CAPABILITY_MAJOR"); err != nil {
		return err
	}
	if d.minor, err = attr(cuDevAttrComputeCapabilityMinor, "COMPUTE_CAPABILITY_MINOR"); err != nil {
		return err
	}
	if d.smCount, err = attr(cuDevAttrMultiprocessorCount, "MULTIPROCESSOR_COUNT"); err != nil {
		return err
	}
	if d.maxThreads, err = attr(cuDevAttrMaxThreadsPerBlock, "MAX_THREADS_PER_BLOCK"); err != nil {
		return err
	}
	if d.smemOptin, err = attr(cuDevAttrMaxSharedMemPerBlockOptin, "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN"); err != nil {
		return err
	}
	var total uintptr
	if r := cu.DeviceTotalMem(&total, d.dev); r != cudaSuccess {
		return newCudaError("cuDeviceTotalMem_v2", r)
	}
	d.totalMem = int64(total)
	var ctx uintptr
	if r := cu.DevicePrimaryCtxRetain(&ctx, d.dev); r != cudaSuccess {
		return newCudaError(fmt.Sprintf("cuDevicePrimaryCtxRetain(device %d)", d.ordinal), r)
	}
	d.ctx = ctx
	if r := cu.CtxSetCurrent(d.ctx); r != cudaSuccess {
		return newCudaError("cuCtxSetCurrent", r)
	}
	if r := cu.StreamCreate(&d.stream, cuStreamNonBlocking); r != cudaSuccess {
		d.stream = 0
		return newCudaError("cuStreamCreate(CU_STREAM_NON_BLOCKING)", r)
	}
	return d.blasInit()
}

// release frees everything init and later calls acquired, on the device
// thread, in reverse order.
func (d *device) release() error {
	var errs []error
	if d.stream != 0 {
		errs = append(errs, cuCheck(cu.StreamSynchronize(d.stream), "cuStreamSynchronize"))
	}
	errs = append(errs, d.graphsRelease())
	errs = append(errs, d.blasRelease())
	errs = append(errs, d.stagingRelease())
	for _, m := range d.modules {
		if m.h != 0 {
			errs = append(errs, cuCheck(cu.ModuleUnload(m.h), "cuModuleUnload(%s)", m.name))
			m.h = 0
		}
	}
	d.modules = nil
	if d.stream != 0 {
		errs = append(errs, cuCheck(cu.StreamDestroy(d.stream), "cuStreamDestroy_v2"))
		d.stream = 0
	}
	if d.ctx != 0 {
		errs = append(errs, cuCheck(cu.CtxSetCurrent(0), "cuCtxSetCurrent(NULL)"))
		errs = append(errs, cuCheck(cu.DevicePrimaryCtxRelease(d.dev), "cuDevicePrimaryCtxRelease_v2(device %d)", d.ordinal))
		d.ctx = 0
	}
	return errors.Join(errs...)
}

// onThread reports whether the caller is the device thread. A locked OS
// thread runs only its own goroutine, so a matching thread id proves it.
func (d *device) onThread() bool { return syscall.Gettid() == d.tid }

// Do runs f on the device's locked OS thread, where the primary context is
// current, and returns its error; the caller waits. Every CUDA call of the
// device goes through Do, and Do nests: device methods called inside f run
// inline. A Do from another goroutine costs a thread hand-off: about a
// microsecond when calls come back to back (both sides poll for cudaSpin),
// tens of microseconds once the device thread has gone to sleep. Batch many
// launches into one f where that matters.
func (d *device) Do(f func() error) error {
	if d.onThread() {
		return f()
	}
	return d.enqueue(&cudaJob{f: f})
}

// enqueue hands j to the device thread and waits for it.
func (d *device) enqueue(j *cudaJob) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return errCudaClosed
	}
	d.work <- j // blocks only while 64 jobs are queued; the device thread drains without mu
	d.mu.Unlock()
	return j.wait()
}

// cudaSafeRun keeps a panic in f from killing the device thread.
func cudaSafeRun(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cuda: panic on the device thread: %v\n%s", r, debug.Stack())
		}
	}()
	return f()
}

// Close synchronises the stream, destroys the cuBLASLt state, unloads modules,
// destroys the stream, releases the primary context and stops the device
// thread. Later calls return an error; a second Close returns nil. Close must
// not be called from inside Do.
func (d *device) Close() error {
	if d.onThread() {
		return errors.New("cuda: Close called on the device thread (inside Do)")
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	// The last job: everything queued before it still runs.
	j := &cudaJob{f: func() error { d.exiting = true; return d.release() }}
	d.work <- j
	d.mu.Unlock()
	err := j.wait()
	<-d.stopped
	return err
}

// Name is the device's marketing name, e.g. "NVIDIA H100 80GB HBM3".
func (d *device) Name() string { return d.name }

// Ordinal is the CUDA device index this device was opened with.
func (d *device) Ordinal() int { return d.ordinal }

// ComputeCapability returns the SM version, e.g. (9, 0) for H100/H200.
func (d *device) ComputeCapability() (major, minor int) { return d.major, d.minor }

// TotalMem is the device memory in bytes (cuDeviceTotalMem_v2).
func (d *device) TotalMem() int64 { return d.totalMem }

// MultiprocessorCount is the number of SMs.
func (d *device) MultiprocessorCount() int { return d.smCount }

// MaxThreadsPerBlock is the device's limit on threads in one block.
func (d *device) MaxThreadsPerBlock() int { return d.maxThreads }

// MaxSharedMemPerBlockOptin is the most dynamic+static shared memory one block
// may use after opting in with function.SetMaxDynamicSharedMem.
func (d *device) MaxSharedMemPerBlockOptin() int { return d.smemOptin }

// Stream is the device's CUstream handle (for libraries such as NCCL).
func (d *device) Stream() uintptr { return d.stream }

// Malloc allocates bytes of device memory (cuMemAlloc_v2; 256-byte aligned).
func (d *device) Malloc(bytes int64) (uintptr, error) {
	if bytes <= 0 {
		return 0, fmt.Errorf("cuda: Malloc(%d bytes): size must be positive", bytes)
	}
	var p uintptr
	err := d.Do(func() error {
		return cuCheck(cu.MemAlloc(&p, uintptr(bytes)), "cuMemAlloc_v2(%d bytes)", bytes)
	})
	return p, err
}

// Free releases memory from Malloc; Free(0) does nothing. It first waits
// for the stream, since work queued there may still use the memory and
// cuda.h promises only that cuMemFree "may perform implicit synchronization".
// That makes Free a synchronisation point: keep it out of the step loop.
func (d *device) Free(ptr uintptr) error {
	if ptr == 0 {
		return nil
	}
	return d.Do(func() error {
		if err := d.flushRecording(); err != nil {
			return err
		}
		if err := cuCheck(cu.StreamSynchronize(d.stream), "cuStreamSynchronize before cuMemFree_v2"); err != nil {
			return err
		}
		return cuCheck(cu.MemFree(ptr), "cuMemFree_v2(%#x)", ptr)
	})
}

// MemGetInfo returns the driver's free and total device memory in bytes.
func (d *device) MemGetInfo() (free, total int64, err error) {
	var f, t uintptr
	err = d.Do(func() error { return cuCheck(cu.MemGetInfo(&f, &t), "cuMemGetInfo_v2") })
	return int64(f), int64(t), err
}

// HtoD copies bytes from host memory to device memory, ordered after the
// work already queued on the stream, and returns once the copy is complete.
func (d *device) HtoD(dst uintptr, src unsafe.Pointer, bytes int64) error {
	if bytes == 0 {
		return nil
	}
	if bytes < 0 {
		return fmt.Errorf("cuda: HtoD(%d bytes): negative size", bytes)
	}
	return d.Do(func() error {
		if err := d.flushRecording(); err != nil {
			return err
		}
		if err := cuCheck(cu.MemcpyHtoDAsync(dst, src, uintptr(bytes), d.stream), "cuMemcpyHtoDAsync_v2(%d bytes)", bytes); err != nil {
			return err
		}
		return cuCheck(cu.StreamSynchronize(d.stream), "cuStreamSynchronize after HtoD")
	})
}

// DtoH copies bytes from device memory to host memory after the work queued
// on the stream has finished, and returns once the data is on the host.
func (d *device) DtoH(dst unsafe.Pointer, src uintptr, bytes int64) error {
	if bytes == 0 {
		return nil
	}
	if bytes < 0 {
		return fmt.Errorf("cuda: DtoH(%d bytes): negative size", bytes)
	}
	return d.Do(func() error {
		if err := d.flushRecording(); err != nil {
			return err
		}
		if err := cuCheck(cu.MemcpyDtoHAsync(dst, src, uintptr(bytes), d.stream), "cuMemcpyDtoHAsync_v2(%d bytes)", bytes); err != nil {
			return err
		}
		return cuCheck(cu.StreamSynchronize(d.stream), "cuStreamSynchronize after DtoH")
	})
}

// DtoD queues a device-to-device copy on the stream.
func (d *device) DtoD(dst, src uintptr, bytes int64) error {
	if bytes == 0 {
		return nil
	}
	if bytes < 0 {
		return fmt.Errorf("cuda: DtoD(%d bytes): negative size", bytes)
	}
	return d.Do(func() error { return d.submit(streamOp{kind: opDtoD, dst: dst, src: src, n: bytes}) })
}

// MemsetD8 queues setting bytes bytes at dst to v on the stream.
func (d *device) MemsetD8(dst uintptr, v byte, bytes int64) error {
	if bytes <= 0 {
		return nil
	}
	return d.Do(func() error { return d.submit(streamOp{kind: opMemset8, dst: dst, n: bytes, val: uint32(v)}) })
}

// MemsetD32 queues setting n 32-bit words at dst (4-byte aligned) to v.
func (d *device) MemsetD32(dst uintptr, v uint32, n int64) error {
	if n <= 0 {
		return nil
	}
	return d.Do(func() error { return d.submit(streamOp{kind: opMemset32, dst: dst, n: n, val: v}) })
}

// Sync waits for all work queued on the device's stream (cuStreamSynchronize).
// Errors of earlier asynchronous work (a faulting kernel) surface here.
func (d *device) Sync() error {
	return d.Do(func() error {
		if err := d.flushRecording(); err != nil {
			return err
		}
		return cuCheck(cu.StreamSynchronize(d.stream), "cuStreamSynchronize")
	})
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

// NewEvent creates a timing event (CU_EVENT_DEFAULT). Release it with
// DestroyEvent.
func (d *device) NewEvent() (uintptr, error) {
	var ev uintptr
	err := d.Do(func() error { return cuCheck(cu.EventCreate(&ev, cuEventDefault), "cuEventCreate") })
	return ev, err
}

// RecordEvent records ev on the device's stream.
func (d *device) RecordEvent(ev uintptr) error {
	return d.Do(func() error {
		if err := d.flushRecording(); err != nil {
			return err
		}
		return cuCheck(cu.EventRecord(ev, d.stream), "cuEventRecord")
	})
}

// ElapsedMs waits for end and returns the milliseconds between the two
// recorded events.
func (d *device) ElapsedMs(start, end uintptr) (float32, error) {
	var ms float32
	err := d.Do(func() error {
		if err := d.flushRecording(); err != nil {
			return err
		}
		if err := cuCheck(cu.EventSynchronize(end), "cuEventSynchronize"); err != nil {
			return err
		}
		return cuCheck(cu.EventElapsedTime(&ms, start, end), "%s", cu.eventElapsedName)
	})
	return ms, err
}

// DestroyEvent releases an event from NewEvent.
func (d *device) DestroyEvent(ev uintptr) error {
	if ev == 0 {
		return nil
	}
	return d.Do(func() error { return cuCheck(cu.EventDestroy(ev), "cuEventDestroy_v2") })
}
