//go:build !(linux && (amd64 || arm64))

// CUDA run-time binding stub for platforms other than linux/amd64 and
// linux/arm64: the same API, every entry point failing with errCudaPlatform,
// so that code using it builds everywhere.
package gpu

import (
	"errors"
	"fmt"
	"unsafe"
)

var errCudaPlatform = errors.New("cuda: the CUDA backend needs linux/amd64 or linux/arm64")

// CudaError is a failed CUDA driver call.
type CudaError struct {
	Op   string
	Code int
}

func (e *CudaError) Error() string { return fmt.Sprintf("%s: CUresult %d", e.Op, e.Code) }

// IsOutOfMemory reports whether the error is CUDA_ERROR_OUT_OF_MEMORY.
func (e *CudaError) IsOutOfMemory() bool { return e.Code == 2 }

// IsCudaOutOfMemory reports whether err wraps a CUDA_ERROR_OUT_OF_MEMORY.
func IsCudaOutOfMemory(err error) bool {
	var ce *CudaError
	return errors.As(err, &ce) && ce.IsOutOfMemory()
}

// CudaDevice is unavailable on this platform.
type CudaDevice struct{}

// CudaModule is unavailable on this platform.
type CudaModule struct{}

// CudaFunction is unavailable on this platform.
type CudaFunction struct{}

func CudaDeviceCount() (int, error)                   { return 0, errCudaPlatform }
func CudaDriverVersion() (int, error)                 { return 0, errCudaPlatform }
func CudaKernelCacheDir() (string, error)             { return "", errCudaPlatform }
func OpenCudaDevice(ordinal int) (*CudaDevice, error) { return nil, errCudaPlatform }

func (d *CudaDevice) Name() string                          { return "" }
func (d *CudaDevice) Ordinal() int                          { return 0 }
func (d *CudaDevice) ComputeCapability() (major, minor int) { return 0, 0 }
func (d *CudaDevice) TotalMem() int64                       { return 0 }
func (d *CudaDevice) MultiprocessorCount() int              { return 0 }
func (d *CudaDevice) MaxSharedMemPerBlockOptin() int        { return 0 }
func (d *CudaDevice) Stream() uintptr                       { return 0 }
func (d *CudaDevice) Do(f func() error) error               { return errCudaPlatform }
func (d *CudaDevice) Close() error                          { return nil }
func (d *CudaDevice) Malloc(bytes int64) (uintptr, error)   { return 0, errCudaPlatform }
func (d *CudaDevice) Free(ptr uintptr) error                { return errCudaPlatform }
func (d *CudaDevice) MemGetInfo() (free, total int64, err error) {
	return 0, 0, errCudaPlatform
}
func (d *CudaDevice) HtoD(dst uintptr, src unsafe.Pointer, bytes int64) error { return errCudaPlatform }
func (d *CudaDevice) HtoDAsync(dst uintptr, src unsafe.Pointer, bytes int64) error {
	return errCudaPlatform
}
func (d *CudaDevice) DtoH(dst unsafe.Pointer, src uintptr, bytes int64) error { return errCudaPlatform }
func (d *CudaDevice) DtoD(dst, src uintptr, bytes int64) error                { return errCudaPlatform }
func (d *CudaDevice) MemsetD8(dst uintptr, v byte, bytes int64) error         { return errCudaPlatform }
func (d *CudaDevice) MemsetD32(dst uintptr, v uint32, n int64) error          { return errCudaPlatform }
func (d *CudaDevice) Sync() error                                             { return errCudaPlatform }
func (d *CudaDevice) Launch(fn *CudaFunction, grid, block [3]uint32, sharedMem uint32, args ...any) error {
	return errCudaPlatform
}
func (d *CudaDevice) NewEvent() (uintptr, error)                      { return 0, errCudaPlatform }
func (d *CudaDevice) RecordEvent(ev uintptr) error                    { return errCudaPlatform }
func (d *CudaDevice) ElapsedMs(start, end uintptr) (float32, error)   { return 0, errCudaPlatform }
func (d *CudaDevice) DestroyEvent(ev uintptr) error                   { return errCudaPlatform }
func (d *CudaDevice) SetGemmWorkspace(ptr uintptr, bytes int64) error { return errCudaPlatform }
func (d *CudaDevice) CompileModule(name, source string, opts ...string) (*CudaModule, error) {
	return nil, errCudaPlatform
}
func (d *CudaDevice) Gemm(c, a, b uintptr, ct, at, bt CudaDType, M, N, K int, transA, transB bool, alpha, beta float32) error {
	return errCudaPlatform
}

func (m *CudaModule) FromCache() bool                             { return false }
func (m *CudaModule) Function(name string) (*CudaFunction, error) { return nil, errCudaPlatform }
func (m *CudaModule) Unload() error                               { return errCudaPlatform }
func (f *CudaFunction) Name() string                              { return "" }
func (f *CudaFunction) SetMaxDynamicSharedMem(bytes int) error    { return errCudaPlatform }
func (f *CudaFunction) NumRegs() (int, error)                     { return 0, errCudaPlatform }
func (f *CudaFunction) MaxThreadsPerBlock() (int, error)          { return 0, errCudaPlatform }
