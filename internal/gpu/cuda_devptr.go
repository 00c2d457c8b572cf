//go:build linux && (amd64 || arm64)

package gpu

// DevicePtr is the CUDA device address of t's first element, for libraries
// that take raw pointers on the device's stream (NCCL in internal/dist).
func (t *Tensor) DevicePtr() uintptr { return t.ptr() }
