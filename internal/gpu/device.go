package gpu

import (
	"errors"
	"fmt"
	"strings"
)

// Device names, as train.device and --device take them.
const (
	DeviceAuto = "auto" // CUDA when a GPU is usable, else the CPU
	DeviceCPU  = "cpu"
	DeviceCUDA = "cuda"
)

// Devices lists every device name, for validation and messages.
var Devices = []string{DeviceAuto, DeviceCPU, DeviceCUDA}

// Open returns the backend for a --device value: "cpu", "cuda", or "auto"
// (CUDA when a GPU is usable, else the CPU). The second result says what was
// chosen and, for auto on the CPU, why.
func Open(device string, threads int) (Backend, string, error) {
	switch device {
	case DeviceCPU:
		return NewCPU(threads), DeviceCPU, nil
	case DeviceAuto:
		c, err := NewCUDA(0)
		if err != nil {
			return NewCPU(threads), fmt.Sprintf("cpu (no usable CUDA device: %s)", Brief(err)), nil
		}
		return c, c.Describe(), nil
	case DeviceCUDA:
		c, err := NewCUDA(0)
		if err != nil {
			return nil, "", fmt.Errorf("device cuda: %w", err)
		}
		return c, c.Describe(), nil
	}
	return nil, "", fmt.Errorf("unknown device %q (want one of %s)", device, strings.Join(Devices, ", "))
}

// Brief is err in one line: a missing library's name rather than every path
// tried, else the error's first line.
func Brief(err error) string {
	var b interface{ Brief() string }
	if errors.As(err, &b) {
		return b.Brief()
	}
	line, _, _ := strings.Cut(err.Error(), "\n")
	return strings.TrimPrefix(line, "cuda: ")
}
