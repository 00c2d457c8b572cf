//go:build linux && (amd64 || arm64)

package cuda

import "github.com/compact-llm/compact/internal/gpu"

// csrc/elementwise.cu: precision conversions (Copy) and Scale.
type elementwiseKernels struct {
	toBF16    convertKernel[bf16, float32] // convert_f32_to_bf16
	toF32     convertKernel[float32, bf16] // convert_bf16_to_f32
	scaleBF16 scaleKernel[bf16]
	scaleF32  scaleKernel[float32]
}

func (k *elementwiseKernels) bindings() []binding {
	return []binding{
		{"convert_f32_to_bf16", &k.toBF16.kernel, 256},
		{"convert_bf16_to_f32", &k.toF32.kernel, 256},
		{"scale_bf16", &k.scaleBF16.kernel, 256},
		{"scale_f32", &k.scaleF32.kernel, 256},
	}
}

type convertKernel[D, S elem] struct{ kernel }

func (k convertKernel[D, S]) launch(dst devPtr[D], src devPtr[S], n int64) {
	k.run(k.elementwise(n), 0, dst.arg(), src.arg(), argI64(n))
}

type scaleKernel[E elem] struct{ kernel }

func (k scaleKernel[E]) launch(x devPtr[E], alpha float32, n int64) {
	k.run(k.elementwise(n), 0, x.arg(), argF32(alpha), argI64(n))
}

func (c *Backend) Scale(x *gpu.Tensor, alpha float32) {
	n := int64(x.Len())
	if x.Prec == gpu.Low {
		c.k.elementwise.scaleBF16.launch(low(x), alpha, n)
	} else {
		c.k.elementwise.scaleF32.launch(full(x), alpha, n)
	}
}
