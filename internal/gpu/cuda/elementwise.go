//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
)

// csrc/elementwise.cu: precision conversions (Copy) and the kernels of the
// gpu.MapOp family (Map), bound by the ops' names: a new MapOp needs no
// change here.
type elementwiseKernels struct {
	toBF16 convertKernel[bf16, float32] // convert_f32_to_bf16
	toF32  convertKernel[float32, bf16] // convert_bf16_to_f32
	maps   [gpu.NumMapOps]mapKernels
}

// mapKernels are one MapOp's kernels, <op>_bf16 and <op>_f32.
type mapKernels struct {
	bf16 mapKernel[bf16]
	f32  mapKernel[float32]
}

func (k *elementwiseKernels) bindings() []binding {
	bs := []binding{
		{"convert_f32_to_bf16", &k.toBF16.kernel, 256},
		{"convert_bf16_to_f32", &k.toF32.kernel, 256},
	}
	for _, op := range gpu.MapOps() {
		bs = append(bs,
			binding{op.String() + "_bf16", &k.maps[op].bf16.kernel, 256},
			binding{op.String() + "_f32", &k.maps[op].f32.kernel, 256})
	}
	return bs
}

type convertKernel[D, S elem] struct{ kernel }

func (k convertKernel[D, S]) launch(dst devPtr[D], src devPtr[S], n int64) {
	k.run(k.elementwise(n), 0, dst.arg(), src.arg(), argI64(n))
}

// mapKernel is the one launcher of every MapOp kernel, whose C signature is
// (T* x, float alpha, long n); TestMapKernelSignatures holds each kernel
// to it.
type mapKernel[E elem] struct{ kernel }

func (k mapKernel[E]) launch(x devPtr[E], alpha float32, n int64) {
	k.run(k.elementwise(n), 0, x.arg(), argF32(alpha), argI64(n))
}

func (c *Backend) Map(op gpu.MapOp, x *gpu.Tensor, alpha float32) {
	if !op.Valid() {
		panic(fmt.Sprintf("cuda: Map of unknown op %v", op))
	}
	n, k := int64(x.Len()), &c.k.elementwise.maps[op]
	if x.Prec == gpu.Low {
		k.bf16.launch(low(x), alpha, n)
	} else {
		k.f32.launch(full(x), alpha, n)
	}
}
