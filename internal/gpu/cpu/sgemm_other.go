//go:build !amd64

package cpu

// sgemmKernels lists the GEMM kernels this CPU can run: none off amd64, so
// float32 GEMMs use gonum's Sgemm.
func sgemmKernels() []sgemmKernel { return nil }
