// Package device picks a backend by name. It is the one place that knows
// both backends (gpu/cpu and gpu/cuda): everything else asks for a
// gpu.Backend here and never imports a backend package, so the model and
// the trainer stay independent of how a device computes.
package device

import (
	"errors"
	"fmt"
	"strings"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/gpu/cuda"
)

// Device names, as train.device and --device take them.
const (
	Auto = "auto" // CUDA when a GPU is usable, else the CPU
	CPU  = "cpu"
	CUDA = "cuda"
)

// Names lists every device name, for validation and messages.
var Names = []string{Auto, CPU, CUDA}

// Open returns the backend for a --device value: "cpu", "cuda", or "auto"
// (CUDA when a GPU is usable, else the CPU). The second result says what was
// chosen and, for auto on the CPU, why.
func Open(device string, threads int) (gpu.Backend, string, error) {
	return OpenOrdinal(device, threads, 0)
}

// OpenOrdinal is Open on CUDA device ordinal: one process of a
// data-parallel job opens its LOCAL_RANK.
func OpenOrdinal(device string, threads, ordinal int) (gpu.Backend, string, error) {
	switch device {
	case CPU:
		return cpu.New(threads), CPU, nil
	case Auto, CUDA:
		c, err := cuda.New(ordinal)
		if err == nil {
			return c, c.Describe(), nil
		}
		name := CUDA
		if ordinal > 0 {
			name = fmt.Sprintf("cuda:%d", ordinal)
		}
		if device == Auto {
			return cpu.New(threads), fmt.Sprintf("cpu (no usable CUDA device: %s)", Brief(err)), nil
		}
		return nil, "", fmt.Errorf("device %s: %w", name, err)
	}
	return nil, "", fmt.Errorf("unknown device %q (want one of %s)", device, strings.Join(Names, ", "))
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

// CUDACount is the number of CUDA devices, for launchers that start one
// process per GPU; an error when no CUDA driver is usable.
func CUDACount() (int, error) { return cuda.DeviceCount() }

// Footprint is what the backend of a device name stores and allocates on
// its own (element sizes, workspace), for predicting memory without
// opening it: CUDA's for "cuda", the CPU's for any other name. Backend
// names (gpu.Backend.Name) are device names.
func Footprint(name string) gpu.Footprint {
	if name == CUDA {
		return cuda.Footprint
	}
	return cpu.Footprint
}
