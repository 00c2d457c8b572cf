package cpu

import "golang.org/x/sys/cpu"

// kernelAVX2x6x16 is implemented in cpu_sgemm_amd64.s.
//
//go:noescape
func kernelAVX2x6x16(k int, a *float32, rs, cs int, b, acc, c *float32, ldc int, alpha, beta float32, final bool)

var sgemmKernelAVX2 = sgemmKernel{name: "avx2-fma", mr: 6, nr: 16,
	fn: func(k int, a []float32, rs, cs int, b, acc, c []float32, ldc int, alpha, beta float32, final bool) {
		// The slicing checks the bounds the assembly relies on.
		a, b, c = a[:5*rs+(k-1)*cs+1], b[:k*16], c[:5*ldc+16]
		var ap *float32
		if acc != nil {
			ap = &acc[:6*16][0]
		}
		kernelAVX2x6x16(k, &a[0], rs, cs, &b[0], ap, &c[0], ldc, alpha, beta, final)
	}}

// kernelAVX512x6x32 is implemented in cpu_sgemm512_amd64.s.
//
//go:noescape
func kernelAVX512x6x32(k int, a *float32, rs, cs int, b, acc, c *float32, ldc int, alpha, beta float32, final bool)

var sgemmKernelAVX512 = sgemmKernel{name: "avx512", mr: 6, nr: 32,
	fn: func(k int, a []float32, rs, cs int, b, acc, c []float32, ldc int, alpha, beta float32, final bool) {
		a, b, c = a[:5*rs+(k-1)*cs+1], b[:k*32], c[:5*ldc+32]
		var ap *float32
		if acc != nil {
			ap = &acc[:6*32][0]
		}
		kernelAVX512x6x32(k, &a[0], rs, cs, &b[0], ap, &c[0], ldc, alpha, beta, final)
	}}

// sgemmKernels lists the GEMM kernels this CPU can run, fastest first; none
// means gonum's Sgemm.
func sgemmKernels() []sgemmKernel {
	var ks []sgemmKernel
	if cpu.X86.HasAVX512F {
		ks = append(ks, sgemmKernelAVX512)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, sgemmKernelAVX2)
	}
	return ks
}
