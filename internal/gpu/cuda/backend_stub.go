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

// OnStream has no device to run on here.
func (c *Backend) OnStream(func(stream uintptr) error) error { return errors.New("no CUDA backend") }

// DevicePtr has no device address to give here.
func DevicePtr(*gpu.Tensor) uintptr { return 0 }

// DeviceCount reports that this platform has no CUDA backend.
func DeviceCount() (int, error) {
	return 0, errors.New("the CUDA backend is built for linux/amd64 and linux/arm64 only")
}

// SideStream is a second stream of the device (sidestream.go); none here.
type SideStream struct{}

// NewSideStream reports that this platform has no CUDA backend.
func (c *Backend) NewSideStream() (*SideStream, error) { return nil, errors.New("no CUDA backend") }

// Fork reports that this platform has no CUDA backend.
func (s *SideStream) Fork(func(side uintptr) error) (uintptr, error) {
	return 0, errors.New("no CUDA backend")
}

// Join reports that this platform has no CUDA backend.
func (s *SideStream) Join(uintptr) error { return errors.New("no CUDA backend") }

// Close does nothing.
func (s *SideStream) Close() error { return nil }
