package optim

// The one update. Every param takes update, whether the step runs after the
// training pass (Apply, step.go) or inside it from the model's hook, and on
// whichever rank owns it (zero.go): one Adam call over its gradient layout
// range for a full-rank param; for a compressed one, the direction
// N = Adam(G) in r-space, then W <- (1 - lr wd) W - lr N P^T landed as the
// plan says:
//
//   - in place (fp32 weights: the master, or the CPU's floats): W is scaled
//     for weight decay and the decompression GEMM accumulates into it
//     (beta = 1). N and P are Low (bf16 on CUDA; bf16-rounded values on the
//     CPU), accumulated in fp32: cuBLASLt runs bf16 x bf16 -> fp32 at ~800
//     TFLOP/s on an H200 against ~60 for the fp32 SIMT GEMM. Rounding N and
//     P to bf16 costs ~2^-9 of the update's size per element (independent
//     errors over r terms, not a bias): about 1e-6 of a weight, far below a
//     bf16 weight's ulp. P is the very bf16 P the forward compressed z
//     with, so the update and the saved activations agree on it;
//   - rounded (bf16 weights without a master): one block of rows at a
//     time, D = -lr N P^T into an fp32 buffer (the GEMM at beta = 0), then
//     W = SR(fl(fl((1 - lr wd) W) + D)) (Backend.StochasticRound with beta),
//     each product and sum rounded to fp32 on its own on both backends.
//     Blocks of rows keep N and D at one chunk each (updateChunk); with
//     8-bit moments a block of rows also covers whole blocks of the moments.
//
// The stochastic rounding of bf16 weights and moments draws noise keyed by
// (train.seed, step, element): the element is the weight-arena or the
// gradient-layout index, so a param updated alone, a segment, a row block
// or a ZeRO-1 share draw exactly the noise of the whole, and the CPU and
// CUDA round identical fp32 values to identical bits.

import (
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/model"
)

// updateChunk bounds the fp32 buffer of the rounded compressed update
// (elements): 32 MiB, small beside the master copy it replaces, large
// enough that the extra launches cost nothing measurable.
const updateChunk = 1 << 23

// update applies the step at learning rate lr to p, whose gradient is
// final (summed over micro-batches and ranks; clipped through o.clip); P is
// p's projection when it is compressed.
func (o *Optimizer) update(p *model.Param, P *gpu.Tensor, lr float64) error {
	hp := o.hyper(lr, p)
	if p.Compressed() {
		o.plan.compressed(o, p, P, hp)
	} else {
		o.adam(target(p), flat(p.Grad), p.GradOff, p.WOff, hp, false)
	}
	if p.Master == nil {
		return nil
	}
	return o.be.Copy(p.W, p.Master) // the master rounded into the bf16 weights
}

// hyper is the Adam step of p at learning rate lr.
func (o *Optimizer) hyper(lr float64, p *model.Param) gpu.AdamParams {
	hp := gpu.AdamParams{LR: float32(lr), Beta1: float32(o.cfg.Beta1), Beta2: float32(o.cfg.Beta2),
		Eps: float32(o.cfg.Eps), Scale: p.Scale, Step: o.Step - o.AdamStart, Form: o.cfg.Form}
	if p.Decay {
		hp.WeightDecay = float32(o.cfg.WeightDecay)
	}
	if p.Compressed() {
		hp.Eps = float32(o.cfg.CompactEps)
	}
	return hp
}

// adam runs the Adam kernel over gradient g, whose moments sit at
// gradient-layout offset gOff: into weights out at weight-arena offset
// wOff, or, when dir, the direction into out.
func (o *Optimizer) adam(out, g *gpu.Tensor, gOff, wOff int, hp gpu.AdamParams, dir bool) {
	m, v := o.state.at(gOff, g.Len())
	r := gpu.AdamRounding{Seed: o.cfg.Precision.Seed, Step: uint32(o.Step), Weights: o.plan.roundWeights && !dir,
		WeightOff: int64(wOff), MomentOff: int64(gOff)}
	o.be.Adam(gpu.AdamUpdate{Out: out, Grad: g, M: m, V: v, Clip: o.clip, Hyper: hp, Direction: dir, Round: r})
}

// target is the tensor p's update changes: its master when it has one.
func target(p *model.Param) *gpu.Tensor {
	if p.Master != nil {
		return p.Master
	}
	return p.W
}

func flat(t *gpu.Tensor) *gpu.Tensor { return t.Reshape(t.Len()) }

// compressedInPlace: N of all of p, then W = (1 - lr wd) W - lr N P^T by
// the GEMM's accumulate.
func (o *Optimizer) compressedInPlace(p *model.Param, P *gpu.Tensor, hp gpu.AdamParams) {
	g := flat(p.Grad)
	dir := o.dir.Rows(0, g.Len())
	o.adam(dir, g, p.GradOff, 0, hp, true)
	w := target(p)
	if hp.WeightDecay != 0 {
		o.be.Map(gpu.MapScale, w, 1-hp.LR*hp.WeightDecay)
	}
	o.be.Gemm(w, dir.Reshape(p.Grad.Shape...), P, false, true, -hp.LR, 1)
}

// compressedRounded: per block of rows, N, D = -lr N P^T, W = SR((1 - lr
// wd) W + D). Shapes come from the tensors: the rank is the gradient's
// width.
func (o *Optimizer) compressedRounded(p *model.Param, P *gpu.Tensor, hp gpu.AdamParams) {
	rows, n, r := p.W.Shape[0], p.W.Shape[1], p.Grad.Shape[1]
	g := flat(p.Grad)
	step := o.chunkRows(p)
	decay := 1 - float32(hp.LR*hp.WeightDecay) // the conversion keeps Go from fusing it
	for r0 := 0; r0 < rows; r0 += step {
		r1 := min(rows, r0+step)
		k := (r1 - r0) * r
		dir := o.dir.Rows(0, k)
		o.adam(dir, g.Rows(r0*r, r0*r+k), p.GradOff+r0*r, 0, hp, true)
		d := o.dBuf.Rows(0, (r1-r0)*n).Reshape(r1-r0, n)
		o.be.Gemm(d, dir.Reshape(r1-r0, r), P, false, true, -hp.LR, 0)
		o.be.StochasticRound(p.W.Rows(r0, r1), d, decay, gpu.RoundParams{Seed: o.cfg.Precision.Seed,
			Stream: gpu.StreamWeights, Step: uint32(o.Step), Offset: int64(p.WOff + r0*n)})
	}
}

// chunkRows is how many rows of compressed p one pass of the rounded update
// covers: as many as o.chunk (updateChunk) elements of the longest
// compressed weight this rank updates allow, and with 8-bit moments a multiple of the rows
// that fill whole blocks of them.
func (o *Optimizer) chunkRows(p *model.Param) int {
	step := max(1, min(o.chunk, o.longestCompressed())/p.W.Shape[1])
	if u := o.plan.block / gcd(o.plan.block, p.Grad.Shape[1]); u > 1 {
		step = max(u, step/u*u)
	}
	return step
}

// longestCompressed is the largest weight of a compressed param this rank
// updates (0: none).
func (o *Optimizer) longestCompressed() int {
	n := 0
	for _, p := range o.layout.Order {
		if p.Compressed() && o.shard.owns(p) {
			n = max(n, p.W.Len())
		}
	}
	return n
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// allocUpdate allocates the compressed update's buffers (Workspace): the
// direction N of the largest piece any owned compressed param is updated
// in (Low), and for rounded updates the fp32 D of the same rows.
func (o *Optimizer) allocUpdate() error {
	dirLen, dLen := 0, 0
	for _, p := range o.layout.Order {
		if !p.Compressed() || !o.shard.owns(p) {
			continue
		}
		rows := p.W.Shape[0]
		if o.plan.roundWeights {
			rows = min(rows, o.chunkRows(p))
			dLen = max(dLen, rows*p.W.Shape[1])
		}
		dirLen = max(dirLen, rows*p.Grad.Shape[1])
	}
	if dirLen == 0 {
		return nil
	}
	var err error
	if o.dir, err = o.be.Alloc("compact.direction", gpu.Workspace, gpu.Low, dirLen); err != nil {
		return err
	}
	if dLen > 0 {
		o.dBuf, err = o.be.Alloc("compact.update", gpu.Workspace, gpu.Full, dLen)
	}
	return err
}
