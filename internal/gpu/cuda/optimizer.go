//go:build linux && (amd64 || arm64)

package cuda

import "github.com/compact-llm/compact/internal/gpu"

// csrc/optimizer.cu: fused AdamW and the compressed Adam direction, each in
// four precision variants (the updated tensor and the gradient in bf16 or
// fp32; moments always fp32).
type optimizerKernels struct {
	adamw   adamwVariants
	adamDir adamDirVariants
	// The lean variants: g fp32, bf16 stores stochastically rounded.
	adamwSRp16      adamwSRKernel[bf16, float32] // adamw_sr_pbf16
	adamwSRp16s16   adamwSRKernel[bf16, bf16]    // adamw_sr_pbf16_sbf16
	adamwSRs16      adamwSRKernel[float32, bf16] // adamw_sr_sbf16
	adamDirSRs16    adamDirSRKernel[float32]     // adam_direction_sr_sbf16
	adamDirSRd16s16 adamDirSRKernel[bf16]        // adam_direction_sr_dbf16_sbf16
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
		{"adamw_sr_pbf16", &k.adamwSRp16.kernel, 256},
		{"adamw_sr_pbf16_sbf16", &k.adamwSRp16s16.kernel, 256},
		{"adamw_sr_sbf16", &k.adamwSRs16.kernel, 256},
		{"adam_direction_sr_sbf16", &k.adamDirSRs16.kernel, 256},
		{"adam_direction_sr_dbf16_sbf16", &k.adamDirSRd16s16.kernel, 256},
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

// srArgs are the rounding keys of the lean kernels: seed, then the streams
// of the rounded operands (the weights' first for adamw_sr), then the step.
func srArgs(r gpu.AdamRounding, weights bool) []kernelArg {
	a := []kernelArg{argU32(uint32(r.Seed)), argU32(uint32(r.Seed >> 32))}
	if weights {
		a = append(a, argU32(gpu.StreamWeights))
	}
	return append(a, argU32(gpu.StreamExpAvg), argU32(gpu.StreamExpAvgSq), argU32(r.Step))
}

type adamwSRKernel[P, M elem] struct{ kernel }

func (k adamwSRKernel[P, M]) launch(p devPtr[P], g devPtr[float32], m, v devPtr[M], clip devPtr[float32], n int64, lr, wd float32, s adamScalars, r gpu.AdamRounding) {
	args := []kernelArg{p.arg(), g.arg(), m.arg(), v.arg(), clip.arg(), argI64(n),
		argF32(lr), argF32(s.beta1), argF32(s.beta2), argF32(s.eps), argF32(wd), argF32(s.scale), argF32(s.bc1), argF32(s.bc2)}
	args = append(append(args, srArgs(r, true)...), argI64(r.WeightOff), argI64(r.MomentOff))
	k.run(k.elementwise(n), 0, args...)
}

type adamDirSRKernel[D elem] struct{ kernel }

func (k adamDirSRKernel[D]) launch(dir devPtr[D], g devPtr[float32], m, v devPtr[bf16], clip devPtr[float32], n int64, s adamScalars, r gpu.AdamRounding) {
	args := []kernelArg{dir.arg(), g.arg(), m.arg(), v.arg(), clip.arg(), argI64(n),
		argF32(s.beta1), argF32(s.beta2), argF32(s.eps), argF32(s.scale), argF32(s.bc1), argF32(s.bc2)}
	args = append(append(args, srArgs(r, false)...), argI64(r.MomentOff))
	k.run(k.elementwise(n), 0, args...)
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

// checkLean checks the operands shared by the lean ops (see gpu.Backend).
func checkLean(op string, n int64, g, m, v *gpu.Tensor, r gpu.AdamRounding) {
	for _, x := range []*gpu.Tensor{g, m, v} {
		check(int64(x.Len()) == n, "%s: %s has %d elements, want %d", op, x, x.Len(), n)
	}
	check(g.Prec == gpu.Full, "%s: gradient %s must be Full", op, g)
	check(m.Prec == v.Prec, "%s: moments %s and %s differ in precision", op, m, v)
	if m.Prec == gpu.Low {
		checkRound(op+" moments", r.MomentParams(gpu.StreamExpAvg), n)
	}
}

// AdamWSR: one fused launch; without anything to round it is AdamW. On
// the device a Low p is bf16, so it is rounded exactly when r.Weights.
func (c *Backend) AdamWSR(p, g, m, v, clip *gpu.Tensor, hp gpu.AdamParams, r gpu.AdamRounding) {
	n, s := int64(p.Len()), scalarsOf(hp)
	checkLean("AdamWSR", n, g, m, v, r)
	check(r.Weights == (p.Prec == gpu.Low), "AdamWSR: %s with weight rounding %v: bf16 weights are rounded, fp32 ones are not", p, r.Weights)
	if r.Weights {
		checkRound("AdamWSR weights", r.WeightParams(), n)
	}
	if n == 0 {
		return
	}
	cl := fullOrNil(clip)
	switch {
	case r.Weights && m.Prec == gpu.Low:
		c.k.optimizer.adamwSRp16s16.launch(low(p), full(g), low(m), low(v), cl, n, hp.LR, hp.WeightDecay, s, r)
	case r.Weights:
		c.k.optimizer.adamwSRp16.launch(low(p), full(g), full(m), full(v), cl, n, hp.LR, hp.WeightDecay, s, r)
	case m.Prec == gpu.Low:
		c.k.optimizer.adamwSRs16.launch(full(p), full(g), low(m), low(v), cl, n, hp.LR, hp.WeightDecay, s, r)
	default:
		c.AdamW(p, g, m, v, clip, hp)
	}
}

// AdamDirectionSR: one fused launch for bf16 moments; fp32 moments take
// AdamDirection itself.
func (c *Backend) AdamDirectionSR(dir, g, m, v, clip *gpu.Tensor, hp gpu.AdamParams, r gpu.AdamRounding) {
	n, s := int64(dir.Len()), scalarsOf(hp)
	checkLean("AdamDirectionSR", n, g, m, v, r)
	if m.Prec != gpu.Low {
		c.AdamDirection(dir, g, m, v, clip, hp)
		return
	}
	if n == 0 {
		return
	}
	cl := fullOrNil(clip)
	if dir.Prec == gpu.Low {
		c.k.optimizer.adamDirSRd16s16.launch(low(dir), full(g), low(m), low(v), cl, n, s, r)
	} else {
		c.k.optimizer.adamDirSRs16.launch(full(dir), full(g), low(m), low(v), cl, n, s, r)
	}
}
