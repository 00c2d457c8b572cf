//go:build linux && (amd64 || arm64)

package cuda

import "github.com/compact-llm/compact/internal/gpu"

// csrc/optimizer.cu: fused AdamW and the compressed Adam direction, each in
// four precision variants (the updated tensor and the gradient in bf16 or
// fp32; moments always fp32).
type optimizerKernels struct {
	adamw   adamwVariants
	adamDir adamDirVariants
}

// adamwVariants and adamDirVariants are the two kernels' precision variants;
// the comments name each field's kernel.
type (
	adamwVariants   = adamVariants[adamwArgs]   // adamw, adamw_gbf16, adamw_pbf16, adamw_pbf16_gbf16
	adamDirVariants = adamVariants[adamScalars] // adam_direction, adam_direction_gbf16, adam_direction_dbf16, adam_direction_dbf16_gbf16
)

func (k *optimizerKernels) bindings() []binding {
	return []binding{
		{"adamw", &k.adamw.f32.kernel, 256},
		{"adamw_gbf16", &k.adamw.g16.kernel, 256},
		{"adamw_pbf16", &k.adamw.d16.kernel, 256},
		{"adamw_pbf16_gbf16", &k.adamw.d16g16.kernel, 256},
		{"adam_direction", &k.adamDir.f32.kernel, 256},
		{"adam_direction_gbf16", &k.adamDir.g16.kernel, 256},
		{"adam_direction_dbf16", &k.adamDir.d16.kernel, 256},
		{"adam_direction_dbf16_gbf16", &k.adamDir.d16g16.kernel, 256},
	}
}

// adamScalars are the kernels' float parameters shared by both ops.
type adamScalars struct {
	beta1, beta2, eps, scale, bc1, bc2 float32
}

func scalarsOf(hp gpu.AdamParams) adamScalars {
	bc1, bc2 := biasCorrections(hp)
	return adamScalars{hp.Beta1, hp.Beta2, hp.Eps, hp.Scale, bc1, bc2}
}

// args are the scalars in the adam_direction kernels' order.
func (s adamScalars) args() []kernelArg {
	return []kernelArg{argF32(s.beta1), argF32(s.beta2), argF32(s.eps), argF32(s.scale), argF32(s.bc1), argF32(s.bc2)}
}

// adamArgs are the trailing scalars of one optimizer kernel family, in its
// C order: adamScalars (adam_direction) or adamwArgs (adamw).
type adamArgs interface{ args() []kernelArg }

// adamwArgs are the adamw kernels' scalars: the step's lr and weight decay
// around the shared ones.
type adamwArgs struct {
	lr, wd float32
	s      adamScalars
}

func (a adamwArgs) args() []kernelArg {
	s := a.s
	return []kernelArg{argF32(a.lr), argF32(s.beta1), argF32(s.beta2), argF32(s.eps), argF32(a.wd), argF32(s.scale), argF32(s.bc1), argF32(s.bc2)}
}

// adamKernel is one precision variant of an optimizer kernel, whose C
// parameters are (D* d, const G* g, float* m, float* v, const float* clip,
// long n, then A's scalars): D the element of the tensor it writes (weights
// or direction), G the gradient's.
type adamKernel[D, G elem, A adamArgs] struct{ kernel }

func (k adamKernel[D, G, A]) launch(d devPtr[D], g devPtr[G], m, v, clip devPtr[float32], n int64, a A) {
	k.run(k.elementwise(n), 0, append([]kernelArg{d.arg(), g.arg(), m.arg(), v.arg(), clip.arg(), argI64(n)}, a.args()...)...)
}

// adamVariants are an optimizer kernel's four variants: the written tensor
// and the gradient each bf16 or fp32.
type adamVariants[A adamArgs] struct {
	f32    adamKernel[float32, float32, A]
	g16    adamKernel[float32, bf16, A]
	d16    adamKernel[bf16, float32, A]
	d16g16 adamKernel[bf16, bf16, A]
}

// launch runs the variant of d's and g's precisions.
func (k *adamVariants[A]) launch(d, g, m, v, clip *gpu.Tensor, a A) {
	n, mm, vv, cl := int64(d.Len()), full(m), full(v), fullOrNil(clip)
	switch {
	case d.Prec == gpu.Low && g.Prec == gpu.Low:
		k.d16g16.launch(low(d), low(g), mm, vv, cl, n, a)
	case d.Prec == gpu.Low:
		k.d16.launch(low(d), full(g), mm, vv, cl, n, a)
	case g.Prec == gpu.Low:
		k.g16.launch(full(d), low(g), mm, vv, cl, n, a)
	default:
		k.f32.launch(full(d), full(g), mm, vv, cl, n, a)
	}
}

// biasCorrections are the kernels' bc1, bc2: the divisors of m and v of
// hp.Form, formed in float64 as the CPU does (see AdamParams.Corrections).
func biasCorrections(hp gpu.AdamParams) (float32, float32) {
	if hp.Step < 1 {
		panic("cuda: Adam step must be >= 1")
	}
	d1, d2 := hp.Corrections()
	return float32(d1), float32(d2)
}

func (c *Backend) AdamW(p, g, m, v, clip *gpu.Tensor, hp gpu.AdamParams) {
	c.k.optimizer.adamw.launch(p, g, m, v, clip, adamwArgs{hp.LR, hp.WeightDecay, scalarsOf(hp)})
}

func (c *Backend) AdamDirection(dir, g, m, v, clip *gpu.Tensor, hp gpu.AdamParams) {
	c.k.optimizer.adamDir.launch(dir, g, m, v, clip, scalarsOf(hp))
}
