//go:build linux && (amd64 || arm64)

// The CUDA device: device owns one GPU through its primary context, one
// OS-locked thread that makes every CUDA call, one non-blocking stream, and
// the NVRTC and cuBLASLt state built on top of them. The driver API it
// calls is bound in driverbind.go; memory and copies are in memory.go,
// kernel launches in launch.go, timing events in events.go.
package cuda

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

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
