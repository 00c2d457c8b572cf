package gpu

import (
	"fmt"
	"runtime"
)

// Open returns the backend for a --device value: "cpu", "cuda", or "auto"
// (CUDA when a GPU is usable, else the CPU). The second result says why auto
// chose what it chose.
func Open(device string, threads int) (Backend, string, error) {
	switch device {
	case "cpu":
		return NewCPU(threads), "cpu requested", nil
	case "auto":
		if err := cudaUsable(); err != nil {
			return NewCPU(threads), fmt.Sprintf("cpu (no usable GPU: %v)", err), nil
		}
		return nil, "", fmt.Errorf("device auto: a GPU was found but this build has no CUDA backend yet")
	case "cuda":
		if err := cudaUsable(); err != nil {
			return nil, "", fmt.Errorf("device cuda: %w", err)
		}
		return nil, "", fmt.Errorf("device cuda: this build has no CUDA backend yet")
	}
	return nil, "", fmt.Errorf("unknown device %q (want auto, cpu or cuda)", device)
}

// cudaUsable reports why CUDA cannot be used; nil when it can.
func cudaUsable() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("CUDA is supported on linux only")
	}
	return fmt.Errorf("the CUDA backend is not part of this build")
}
