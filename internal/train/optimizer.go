// Package train runs training: the loop, optimizers, learning-rate schedule,
// checkpoints, metrics and the run configuration.
package train

import (
	"fmt"
	"math"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/projection"
)

// OptimizerConfig holds the Adam hyper-parameters shared by every param.
type OptimizerConfig struct {
	Beta1, Beta2 float64
	Eps          float64 // full-rank AdamW
	CompactEps   float64 // compressed Adam (paper: 1e-6)
	WeightDecay  float64
	GradClip     float64 // global-norm clip; <= 0 disables
	UpdateGap    int
	Precision    PrecisionConfig // master-free weights, bf16 moments (optimizer_lean.go)
	Form         gpu.AdamForm    // torch's or HuggingFace's bias correction, for every param
	Shard        Shard           // ZeRO-1: this rank's share of the state (zero.go)
}

// Optimizer is AdamW for full-rank params and CompAct's compressed Adam for
// the rest: moments of shape (rows, r), W <- W - lr*alpha*N P^T.
type Optimizer struct {
	cfg            OptimizerConfig
	be             gpu.Backend
	model          *model.Model
	M, V           []*gpu.Tensor // per model.Params index, shaped like Grad (views of the arenas); nil where another rank owns the param
	mArena, vArena *gpu.Tensor   // this rank's range of the gradient layout (all of it unsharded)
	shard          *zeroShard
	dir            *gpu.Tensor // compressed Adam direction N (Low: see decompress)
	sumSq          *gpu.Tensor // the squared gradient norm of step normStep
	clip           *gpu.Tensor // 1 unless grad_clip > 0 clips
	update         *gpu.Tensor // D = -lr N P^T of master-free compressed params (optimizer_lean.go)
	fused          fusedStep
	Step           int  // optimizer steps taken
	normStep       int  // the step whose gradient norm sumSq holds (0: none)
	skipNorm       bool // the coming step need not compute the norm (Begin)
	// dp, in a data-parallel job, sums a fused group's gradients over the
	// ranks before they update and, sharded, reduce-scatters the gradients
	// and gathers weights and moments (zero.go); nil in a plain run.
	dp exchange
}

// NewOptimizer allocates zeroed moments for the parameters of m this rank
// owns (all of them unless cfg.Shard splits them): two arenas laid out like
// the gradient layout's owned range, with per-parameter views.
func NewOptimizer(m *model.Model, cfg OptimizerConfig) (*Optimizer, error) {
	be := m.Backend()
	o := &Optimizer{cfg: cfg, be: be, model: m}
	var err error
	if m.Fused() && cfg.GradClip > 0 {
		return nil, fmt.Errorf("optimizer: a fused update cannot clip by the global norm (grad_clip %g)", cfg.GradClip)
	}
	if o.shard, err = newZeroShard(m, cfg.Shard); err != nil {
		return nil, err
	}
	if err := o.shardMaster(); err != nil {
		return nil, err
	}
	n := o.shard.momentLen()
	if o.mArena, err = be.Alloc("exp_avg", gpu.Optimizer, momentPrecision(cfg.Precision), n); err != nil {
		return nil, err
	}
	if o.vArena, err = be.Alloc("exp_avg_sq", gpu.Optimizer, momentPrecision(cfg.Precision), n); err != nil {
		return nil, err
	}
	for _, p := range m.Params {
		var mv, vv *gpu.Tensor
		if o.shard.owns(p) {
			mv, vv = o.moments(p.GradOff, p.Grad.Len())
			mv, vv = mv.Reshape(p.Grad.Shape...), vv.Reshape(p.Grad.Shape...)
		}
		o.M, o.V = append(o.M, mv), append(o.V, vv)
	}
	for _, s := range o.shard.segs {
		if s.Compressed() {
			if o.dir, err = be.Alloc("compact.direction", gpu.Workspace, gpu.Low, o.directionLen(s)); err != nil {
				return nil, err
			}
		}
	}
	if o.sumSq, err = be.Alloc("grad_norm_sq", gpu.Other, gpu.Full, 1); err != nil {
		return nil, err
	}
	if o.clip, err = be.Alloc("clip_scale", gpu.Other, gpu.Full, 1); err != nil {
		return nil, err
	}
	// Without clipping the scale stays 1 (ClipScale runs only when it clips).
	if err := be.Upload(o.clip, []float32{1}); err != nil {
		return nil, err
	}
	if err := o.allocLean(); err != nil {
		return nil, err
	}
	return o, nil
}

// BeginStep selects the projection epoch of the coming step, so that the
// forward passes save z through the same P that the update will use.
func (o *Optimizer) BeginStep() {
	o.model.SetEpoch(projection.Epoch(o.Step+1, o.cfg.UpdateGap))
}

// Update takes one optimizer step at learning rate lr with the gradients
// accumulated in the model, and returns the global gradient norm before
// clipping (compressed gradients included). Each update class is one fused
// launch over its arena segment; compressed params then decompress their
// direction through P, one GEMM each.
func (o *Optimizer) Update(lr float64) (float64, error) {
	o.skipNorm = false
	if err := o.Apply(lr); err != nil {
		return 0, err
	}
	return o.GradNorm()
}

// GradNorm reads the global gradient norm of the last update (before
// clipping); it waits for the GPU. A step begun without the norm (Begin)
// has none, and asking for it is an error rather than a stale value.
func (o *Optimizer) GradNorm() (float64, error) {
	if o.normStep != o.Step || o.Step == 0 {
		return 0, fmt.Errorf("gradient norm of step %d: not computed (the step was begun without it)", o.Step)
	}
	sq, err := o.be.Download(o.sumSq)
	if err != nil {
		return 0, fmt.Errorf("gradient norm: %w", err)
	}
	return math.Sqrt(float64(sq[0])), nil
}

// Apply is Update without reading the gradient norm back: it only queues
// work, so a training step need not wait for the GPU. A fused optimizer
// updates inside the training pass instead (Begin, Finish).
func (o *Optimizer) Apply(lr float64) error {
	be, m := o.be, o.model
	if m.Fused() {
		return fmt.Errorf("optimizer: the model was built for a fused update; step with Begin and Finish")
	}
	o.Step++
	m.SetEpoch(projection.Epoch(o.Step, o.cfg.UpdateGap))
	if o.shard.sharded() {
		if err := o.reduceShare(); err != nil {
			return err
		}
	}
	if o.wantNorm() {
		be.Zero(o.sumSq)
		be.SumSquares(o.sumSq, o.shard.ownGrads(m))
		if err := o.sumNormOverRanks(); err != nil {
			return err
		}
		o.normStep = o.Step
	}
	if o.cfg.GradClip > 0 {
		be.ClipScale(o.clip, o.sumSq, float32(o.cfg.GradClip))
	}
	grads := m.GradArena()
	for _, s := range o.shard.segs {
		hp := o.hyper(lr, s.Scale, s.Decay, s.Compressed())
		g := grads.Rows(s.GradOff, s.GradOff+s.GLen)
		if !s.Compressed() {
			o.fullRank(s.Off, s.GradOff, s.Len, g, hp)
			continue
		}
		if o.cfg.Precision.MasterFree {
			o.compressedSR(s, hp)
			continue
		}
		o.direction(o.dir, s.GradOff, g, hp)
		if hp.WeightDecay != 0 {
			be.Map(gpu.MapScale, m.UpdateRows(s.Off, s.Off+s.Len), 1-hp.LR*hp.WeightDecay)
		}
		o.decompress(s, hp.LR)
	}
	if o.shard.sharded() {
		return o.shareWeights()
	}
	return m.SyncWeights()
}

// wantNorm reports whether the step being taken computes the gradient
// norm: when it clips, or unless Begin said nobody reads it. The request
// lasts one step.
func (o *Optimizer) wantNorm() bool {
	want := o.cfg.GradClip > 0 || !o.skipNorm
	o.skipNorm = false
	return want
}

// moments are the views of the moments of gradient-layout elements
// [off, off+n), which this rank must own.
func (o *Optimizer) moments(off, n int) (m, v *gpu.Tensor) {
	off -= o.shard.momentBase()
	return o.mArena.Rows(off, off+n), o.vArena.Rows(off, off+n)
}

// hyper is the Adam step of one update class at learning rate lr.
func (o *Optimizer) hyper(lr float64, scale float32, decay, compressed bool) gpu.AdamParams {
	hp := gpu.AdamParams{LR: float32(lr), Beta1: float32(o.cfg.Beta1), Beta2: float32(o.cfg.Beta2),
		Eps: float32(o.cfg.Eps), Scale: scale, Step: o.Step, Form: o.cfg.Form}
	if decay {
		hp.WeightDecay = float32(o.cfg.WeightDecay)
	}
	if compressed {
		hp.Eps = float32(o.cfg.CompactEps)
	}
	return hp
}

// fullRank is AdamW over the n weights at weight-arena offset wOff, whose
// gradients g sit at gradient-layout offset gOff (where their moments are).
func (o *Optimizer) fullRank(wOff, gOff, n int, g *gpu.Tensor, hp gpu.AdamParams) {
	m, v := o.moments(gOff, n)
	p := o.model.UpdateRows(wOff, wOff+n)
	if o.lean() {
		o.be.AdamWSR(p, g, m, v, o.clip, hp, o.rounding(wOff, gOff))
		return
	}
	o.be.AdamW(p, g, m, v, o.clip, hp)
}

// direction writes the compressed Adam direction of the gradients g (at
// gradient-layout offset gOff) into dir, updating their moments.
func (o *Optimizer) direction(dir *gpu.Tensor, gOff int, g *gpu.Tensor, hp gpu.AdamParams) {
	n := g.Len()
	m, v := o.moments(gOff, n)
	if o.cfg.Precision.StateBF16 {
		o.be.AdamDirectionSR(dir.Rows(0, n), g, m, v, o.clip, hp, o.rounding(0, gOff))
		return
	}
	o.be.AdamDirection(dir.Rows(0, n), g, m, v, o.clip, hp)
}

// decompress applies W (rows, n) -= lr * N (rows, r) P^T for every param of
// the compressed segment s (this rank's part of it; alpha is already in N).
// q/k/v and gate/up share P, so it is generated (or read from the model's
// cache) once per group.
func (o *Optimizer) decompress(s model.Segment, lr float32) {
	m := o.model
	var P *gpu.Tensor
	lastLayer, lastGroup := -1, -1
	for _, p := range m.ArenaOrder() {
		if !p.Compressed() || !inSegment(p, s) {
			continue
		}
		if p.Layer != lastLayer || p.Group.ID != lastGroup {
			P = m.Projection(p.Layer, p.Group)
			lastLayer, lastGroup = p.Layer, p.Group.ID
		}
		off := p.GradOff - s.GradOff
		o.decompressInto(p.Updatable(), o.dir.Rows(off, off+p.Grad.Len()).Reshape(p.Grad.Shape...), P, lr)
	}
}

// decompressInto is the decompressed update w (rows, n) -= lr * dir P^T, on
// tensor cores: dir and P are Low (bf16 on CUDA; bf16-rounded values on the
// CPU), accumulated in fp32 into w (the fp32 master, or the CPU's
// weights; master-free weights take D = -lr dir P^T at beta 0 instead,
// compressedSRParam). cuBLASLt runs bf16 x bf16 ->
// fp32 at ~800 TFLOP/s on an H200 against ~60 for the fp32 SIMT GEMM.
// Rounding N and P to bf16 costs ~2^-9 of the update's size per element
// (independent errors over r terms, not a bias): about 1e-6 of a weight, far
// below a bf16 weight's ulp. P is the very bf16 P the forward compressed z
// with, so the update and the saved activations agree on the projection.
func (o *Optimizer) decompressInto(w, dir, P *gpu.Tensor, lr float32) {
	o.be.Gemm(w, dir, P, false, true, -lr, 1)
}

// inSegment reports whether p lies in segment s of the gradient layout.
func inSegment(p *model.Param, s model.Segment) bool {
	return p.GradOff >= s.GradOff && p.GradOff < s.GradOff+s.GLen
}

// reset zeroes the moments and the step count: the state of a run that
// has not begun (a rollback to the initialisation).
func (o *Optimizer) reset() {
	o.be.Zero(o.mArena)
	o.be.Zero(o.vArena)
	o.Step, o.normStep = 0, 0
}

// Free releases the optimizer state.
func (o *Optimizer) Free() {
	for _, t := range []*gpu.Tensor{o.mArena, o.vArena, o.dir, o.sumSq, o.clip, o.update} {
		if t != nil {
			o.be.Free(t)
		}
	}
}
