//go:build linux && (amd64 || arm64)

package cuda

// The CUDA driver API, bound at run time through purego: the entry points
// (cu), their constants, and the errors they return.

import (
	"errors"
	"fmt"
	"sync"
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
