// Package csrc holds the CUDA C++ sources of compact's own kernels. They are
// embedded in the binary and compiled at run time by NVRTC for the GPU's own
// architecture (sm_90 on H100/H200) with -std=c++17 and the CUDA include path.
// Each .cu file starts with `#include "common.cuh"`; the host supplies that
// header to NVRTC by name (or splices its text in). Every .cu file opens with
// a comment giving each kernel's math, shapes, launch configuration and
// determinism; the Go CUDA backend launches them exactly as documented there.
package csrc

import "embed"

// FS holds every *.cu and *.cuh file of this directory.
//
//go:embed *.cu *.cuh
var FS embed.FS
