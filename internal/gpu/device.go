package gpu

import (
	"errors"
	"fmt"
	"strings"
)

// Open returns the backend for a --device value: "cpu", "cuda", or "auto"
// (CUDA when a GPU is usable, else the CPU). The second result says what was
// chosen and, for auto on the CPU, why.
func Open(device string, threads int) (Backend, string, error) {
	switch device {
	case "cpu":
		return NewCPU(threads), "cpu", nil
	case "auto":
		c, err := NewCUDA(0)
		if err != nil {
			return NewCPU(threads), fmt.Sprintf("cpu (no usable CUDA device: %s)", Brief(err)), nil
		}
		return c, c.Describe(), nil
	case "cuda":
		c, err := NewCUDA(0)
		if err != nil {
			return nil, "", fmt.Errorf("device cuda: %w", err)
		}
		return c, c.Describe(), nil
	}
	return nil, "", fmt.Errorf("unknown device %q (want auto, cpu or cuda)", device)
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
