//go:build !(linux && (amd64 || arm64))

package gpu

import "errors"

// CUDA is unavailable on this platform.
type CUDA struct{ Backend }

// NewCUDA reports that this platform has no CUDA backend.
func NewCUDA(ordinal int) (*CUDA, error) {
	return nil, errors.New("the CUDA backend is built for linux/amd64 and linux/arm64 only")
}

// Describe names the device.
func (c *CUDA) Describe() string { return "cuda" }
