//go:build linux && (amd64 || arm64)

package cuda

import "github.com/compact-llm/compact/internal/gpu"

// csrc/optimizer.cu: the one Adam kernel (gpu.Backend.Adam), instantiated
// for the element types of what it writes (weights or direction, fp32 or
// bf16), of the gradient it reads (fp32, or the bf16 sums of
// train.grad_accum_state bf16) and of the moments (fp32, bf16 or 8-bit
// codes).
type optimizerKernels struct {
	f32  adamByGrad[float32] // adam_f32_*
	bf16 adamByGrad[bf16]    // adam_bf16_*
}

// adamByGrad are the variants writing an O tensor, by the gradient's storage.
type adamByGrad[O elem] struct {
	f32  adamByState[O, float32] // adam_<o>_<state>
	bf16 adamByState[O, bf16]    // adam_<o>_<state>_gbf16
}

// adamByState are the variants writing an O tensor from a G gradient, one
// per moment storage.
type adamByState[O, G elem] struct {
	f32  adamKernel[O, float32, G]
	bf16 adamKernel[O, bf16, G]
	i8   adamKernel[O, uint8, G]
}

func (k *optimizerKernels) bindings() []binding {
	return append(k.f32.bindings("adam_f32"), k.bf16.bindings("adam_bf16")...)
}

func (k *adamByGrad[O]) bindings(prefix string) []binding {
	return append(k.f32.bindings(prefix, ""), k.bf16.bindings(prefix, "_gbf16")...)
}

func (k *adamByState[O, G]) bindings(prefix, suffix string) []binding {
	return []binding{
		{prefix + "_f32" + suffix, &k.f32.kernel, 256},
		{prefix + "_bf16" + suffix, &k.bf16.kernel, 256},
		{prefix + "_i8" + suffix, &k.i8.kernel, 256},
	}
}

// adamArgs are the kernel's scalars, in its C order after the pointers and n.
type adamArgs struct {
	lr, beta1, beta2, eps, wd, scale, bc1, bc2 float32
	direction                                  bool
	r                                          gpu.AdamRounding
}

func argsOf(u gpu.AdamUpdate) adamArgs {
	hp := u.Hyper
	bc1, bc2 := biasCorrections(hp)
	return adamArgs{hp.LR, hp.Beta1, hp.Beta2, hp.Eps, hp.WeightDecay, hp.Scale, bc1, bc2, u.Direction, u.Round}
}

// adamKernel is one variant: C parameters (O* out, const G* g, S* m, S* v,
// float* m_scale, float* v_scale, const float* clip, long n, then adamArgs:
// float lr, beta1, beta2, eps, wd, scale, bc1, bc2, int direction, unsigned
// int seed_lo, seed_hi, stream_w, stream_m, stream_v, step, long woff, long
// moff).
type adamKernel[O, S, G elem] struct{ kernel }

func (k adamKernel[O, S, G]) launch(grid dim3, out devPtr[O], g devPtr[G], m, v devPtr[S], ms, vs, clip devPtr[float32], n int64, a adamArgs) {
	r := a.r
	k.run(grid, 0, out.arg(), g.arg(), m.arg(), v.arg(), ms.arg(), vs.arg(), clip.arg(), argI64(n),
		argF32(a.lr), argF32(a.beta1), argF32(a.beta2), argF32(a.eps), argF32(a.wd), argF32(a.scale), argF32(a.bc1), argF32(a.bc2),
		argBool(a.direction), argU32(uint32(r.Seed)), argU32(uint32(r.Seed>>32)),
		argU32(gpu.StreamWeights), argU32(gpu.StreamExpAvg), argU32(gpu.StreamExpAvgSq), argU32(r.Step),
		argI64(r.WeightOff), argI64(r.MomentOff))
}

// launch runs the variant of u's gradient storage.
func (k *adamByGrad[O]) launch(out devPtr[O], u gpu.AdamUpdate) {
	if u.Grad.Prec == gpu.Low {
		k.bf16.launch(out, low(u.Grad), u)
		return
	}
	k.f32.launch(out, full(u.Grad), u)
}

// launch runs the variant of u's moment storage: elementwise over the
// elements, or one warp per 8-bit block.
func (k *adamByState[O, G]) launch(out devPtr[O], g devPtr[G], u gpu.AdamUpdate) {
	n, cl, a := int64(u.Out.Len()), fullOrNil(u.Clip), argsOf(u)
	m, v := u.M.Data, u.V.Data
	switch m.Prec {
	case gpu.Full:
		k.f32.launch(k.f32.elementwise(n), out, g, full(m), full(v), 0, 0, cl, n, a)
	case gpu.Low:
		k.bf16.launch(k.bf16.elementwise(n), out, g, low(m), low(v), 0, 0, cl, n, a)
	case gpu.Code8:
		blocks, warps := (n+gpu.QuantBlock-1)/gpu.QuantBlock, int64(k.i8.block/32)
		k.i8.launch(k.i8.strided(blocks, warps, 16), out, g, codes(m), codes(v), full(u.M.Scale), full(u.V.Scale), cl, n, a)
	}
}

// biasCorrections are the kernel's bc1, bc2: the divisors of m and v of
// hp.Form, formed in float64 as the CPU does (see AdamParams.Corrections).
func biasCorrections(hp gpu.AdamParams) (float32, float32) {
	d1, d2 := hp.Corrections()
	return float32(d1), float32(d2)
}

// Adam is gpu.Backend.Adam in one launch. On the device bf16 weights are
// always rounded stochastically (there is no master to keep the rest), fp32
// ones never; a bf16 direction is rounded to the nearest.
func (c *Backend) Adam(u gpu.AdamUpdate) {
	if err := u.Check(); err != nil {
		check(false, "%v", err)
	}
	low16 := u.Out.Prec == gpu.Low
	check(u.Direction || u.Round.Weights == low16, "Adam: weights %s with rounding %v: bf16 weights are rounded, fp32 ones are not", u.Out, u.Round.Weights)
	if u.Out.Len() == 0 {
		return
	}
	if low16 {
		c.k.optimizer.bf16.launch(low(u.Out), u)
	} else {
		c.k.optimizer.f32.launch(full(u.Out), u)
	}
}
