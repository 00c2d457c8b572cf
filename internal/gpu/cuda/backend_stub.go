//go:build !(linux && (amd64 || arm64))

package cuda

import (
	"errors"
	"io"

	"github.com/compact-llm/compact/internal/gpu"
)

// Backend is unavailable on this platform.
type Backend struct{ gpu.Backend }

// New reports that this platform has no CUDA backend.
func New(ordinal int) (*Backend, error) {
	return nil, errors.New("the CUDA backend is built for linux/amd64 and linux/arm64 only")
}

// Describe names the device.
func (c *Backend) Describe() string { return "cuda" }

// MemGetInfo has nothing to report here.
func (c *Backend) MemGetInfo() (free, total int64, err error) {
	return 0, 0, errors.New("no CUDA backend")
}

// StartProfile and StopProfile have nothing to time here.
func (c *Backend) StartProfile()                            {}
func (c *Backend) StopProfile(w io.Writer, steps int) error { return nil }

// DeviceCount reports that this platform has no CUDA backend.
func DeviceCount() (int, error) {
	return 0, errors.New("the CUDA backend is built for linux/amd64 and linux/arm64 only")
}
