//go:build !amd64

package gpu

// hasVecF32 is false off amd64: SwiGLU runs the generic loops.
const hasVecF32 = false

func swigluF32(out, g, u []float32) { panic("gpu/cpu: no vector SwiGLU on this architecture") }
func swigluBackwardF32(dg, du, dout, g, u []float32) {
	panic("gpu/cpu: no vector SwiGLU on this architecture")
}
