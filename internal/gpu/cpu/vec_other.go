//go:build !amd64

package cpu

// hasVecF32 is false off amd64: SwiGLU runs the generic loops.
const hasVecF32 = false

func swigluF32(out, g, u []float32) { panic("gpu/cpu: no vector SwiGLU on this architecture") }
func swigluBackwardF32(dg, du, dout, g, u []float32) {
	panic("gpu/cpu: no vector SwiGLU on this architecture")
}

// expSubF32 sets x[i] = exp(x[i] - sub).
func expSubF32(x []float32, sub float32) {
	for i, v := range x {
		x[i] = exp32(v - sub)
	}
}
