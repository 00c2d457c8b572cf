package cpu

import "golang.org/x/sys/cpu"

// Implemented in cpu_vec_amd64.s; n must be a multiple of 8.
//
//go:noescape
func swigluAVX2(out, gate, up *float32, n int)

//go:noescape
func swigluBackwardAVX2(dg, du, dout, gate, up *float32, n int)

//go:noescape
func expSubAVX2(x *float32, n int, sub float32)

// hasVecF32 reports whether the AVX2+FMA elementwise kernels can run.
var hasVecF32 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// swigluF32 runs the vector kernel on whole groups of 8 and on the tail
// through a zero-padded group, so every element gets the same instructions
// wherever a goroutine's chunk starts or ends.
func swigluF32(out, g, u []float32) {
	n := len(out)
	g, u = g[:n], u[:n]
	if v := n &^ 7; v > 0 {
		swigluAVX2(&out[0], &g[0], &u[0], v)
	}
	if t := n & 7; t > 0 {
		var o, gg, uu [8]float32
		copy(gg[:], g[n-t:])
		copy(uu[:], u[n-t:])
		swigluAVX2(&o[0], &gg[0], &uu[0], 8)
		copy(out[n-t:], o[:t])
	}
}

// swigluBackwardF32 is swigluF32 for the backward.
func swigluBackwardF32(dg, du, dout, g, u []float32) {
	n := len(dout)
	dg, du, g, u = dg[:n], du[:n], g[:n], u[:n]
	if v := n &^ 7; v > 0 {
		swigluBackwardAVX2(&dg[0], &du[0], &dout[0], &g[0], &u[0], v)
	}
	if t := n & 7; t > 0 {
		var a, b, d, gg, uu [8]float32
		copy(d[:], dout[n-t:])
		copy(gg[:], g[n-t:])
		copy(uu[:], u[n-t:])
		swigluBackwardAVX2(&a[0], &b[0], &d[0], &gg[0], &uu[0], 8)
		copy(dg[n-t:], a[:t])
		copy(du[n-t:], b[:t])
	}
}

// expSubF32 sets x[i] = exp(x[i] - sub) (softmax numerators; the argument is
// clamped to [-87.3, 88.7], so a vanishing weight is ~1e-38 rather than 0).
// The tail goes through a padded group like swigluF32's.
func expSubF32(x []float32, sub float32) {
	n := len(x)
	if v := n &^ 7; v > 0 {
		expSubAVX2(&x[0], v, sub)
	}
	if t := n & 7; t > 0 {
		var p [8]float32
		copy(p[:], x[n-t:])
		expSubAVX2(&p[0], 8, sub)
		copy(x[n-t:], p[:t])
	}
}
