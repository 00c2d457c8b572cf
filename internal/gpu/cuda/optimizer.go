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

type adamwVariants struct {
	f32    adamwKernel[float32, float32] // adamw
	g16    adamwKernel[float32, bf16]    // adamw_gbf16
	p16    adamwKernel[bf16, float32]    // adamw_pbf16
	p16g16 adamwKernel[bf16, bf16]       // adamw_pbf16_gbf16
}

type adamDirVariants struct {
	f32    adamDirKernel[float32, float32] // adam_direction
	g16    adamDirKernel[float32, bf16]    // adam_direction_gbf16
	d16    adamDirKernel[bf16, float32]    // adam_direction_dbf16
	d16g16 adamDirKernel[bf16, bf16]       // adam_direction_dbf16_gbf16
}

func (k *optimizerKernels) bindings() []binding {
	return []binding{
		{"adamw", &k.adamw.f32.kernel, 256},
		{"adamw_gbf16", &k.adamw.g16.kernel, 256},
		{"adamw_pbf16", &k.adamw.p16.kernel, 256},
		{"adamw_pbf16_gbf16", &k.adamw.p16g16.kernel, 256},
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

type adamwKernel[P, G elem] struct{ kernel }

func (k adamwKernel[P, G]) launch(p devPtr[P], g devPtr[G], m, v, clip devPtr[float32], n int64, lr, wd float32, s adamScalars) {
	k.run(k.elementwise(n), 0, p.arg(), g.arg(), m.arg(), v.arg(), clip.arg(), argI64(n),
		argF32(lr), argF32(s.beta1), argF32(s.beta2), argF32(s.eps), argF32(wd), argF32(s.scale), argF32(s.bc1), argF32(s.bc2))
}

type adamDirKernel[D, G elem] struct{ kernel }

func (k adamDirKernel[D, G]) launch(dir devPtr[D], g devPtr[G], m, v, clip devPtr[float32], n int64, s adamScalars) {
	k.run(k.elementwise(n), 0, dir.arg(), g.arg(), m.arg(), v.arg(), clip.arg(), argI64(n),
		argF32(s.beta1), argF32(s.beta2), argF32(s.eps), argF32(s.scale), argF32(s.bc1), argF32(s.bc2))
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
	n, s := int64(p.Len()), scalarsOf(hp)
	mm, vv, cl := full(m), full(v), fullOrNil(clip)
	k := &c.k.optimizer.adamw
	switch {
	case p.Prec == gpu.Low && g.Prec == gpu.Low:
		k.p16g16.launch(low(p), low(g), mm, vv, cl, n, hp.LR, hp.WeightDecay, s)
	case p.Prec == gpu.Low:
		k.p16.launch(low(p), full(g), mm, vv, cl, n, hp.LR, hp.WeightDecay, s)
	case g.Prec == gpu.Low:
		k.g16.launch(full(p), low(g), mm, vv, cl, n, hp.LR, hp.WeightDecay, s)
	default:
		k.f32.launch(full(p), full(g), mm, vv, cl, n, hp.LR, hp.WeightDecay, s)
	}
}

func (c *Backend) AdamDirection(dir, g, m, v, clip *gpu.Tensor, hp gpu.AdamParams) {
	n, s := int64(dir.Len()), scalarsOf(hp)
	mm, vv, cl := full(m), full(v), fullOrNil(clip)
	k := &c.k.optimizer.adamDir
	switch {
	case dir.Prec == gpu.Low && g.Prec == gpu.Low:
		k.d16g16.launch(low(dir), low(g), mm, vv, cl, n, s)
	case dir.Prec == gpu.Low:
		k.d16.launch(low(dir), full(g), mm, vv, cl, n, s)
	case g.Prec == gpu.Low:
		k.g16.launch(full(dir), low(g), mm, vv, cl, n, s)
	default:
		k.f32.launch(full(dir), full(g), mm, vv, cl, n, s)
	}
}
