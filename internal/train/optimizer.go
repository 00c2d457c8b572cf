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
}

// Optimizer is AdamW for full-rank params and CompAct's compressed Adam for
// the rest: moments of shape (rows, r), W <- W - lr*alpha*N P^T.
type Optimizer struct {
	cfg   OptimizerConfig
	be    gpu.Backend
	model *model.Model
	M, V  []*gpu.Tensor // per model.Params index, shaped like Grad
	dir   *gpu.Tensor   // compressed Adam direction N, largest rows*r
	proj  *gpu.Tensor   // Full P for the decompressed update
	sumSq *gpu.Tensor
	clip  *gpu.Tensor
	Step  int // optimizer steps taken
}

// NewOptimizer allocates zeroed moments for every parameter of m.
func NewOptimizer(m *model.Model, cfg OptimizerConfig) (*Optimizer, error) {
	be := m.Backend()
	o := &Optimizer{cfg: cfg, be: be, model: m}
	maxDir := 0
	for _, p := range m.Params {
		mm, err := be.Alloc(p.Name+".exp_avg", gpu.Optimizer, gpu.Full, p.Grad.Shape...)
		if err != nil {
			return nil, err
		}
		vv, err := be.Alloc(p.Name+".exp_avg_sq", gpu.Optimizer, gpu.Full, p.Grad.Shape...)
		if err != nil {
			return nil, err
		}
		o.M, o.V = append(o.M, mm), append(o.V, vv)
		if p.Compressed() {
			maxDir = max(maxDir, p.Grad.Len())
		}
	}
	var err error
	if maxDir > 0 {
		if o.dir, err = be.Alloc("compact.direction", gpu.Workspace, gpu.Full, maxDir); err != nil {
			return nil, err
		}
		if o.proj, err = be.Alloc("compact.update_projection", gpu.Projection, gpu.Full, m.MaxProjection()); err != nil {
			return nil, err
		}
	}
	if o.sumSq, err = be.Alloc("grad_norm_sq", gpu.Other, gpu.Full, 1); err != nil {
		return nil, err
	}
	if o.clip, err = be.Alloc("clip_scale", gpu.Other, gpu.Full, 1); err != nil {
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
// clipping (compressed gradients included).
func (o *Optimizer) Update(lr float64) (float64, error) {
	be, m := o.be, o.model
	o.Step++
	m.SetEpoch(projection.Epoch(o.Step, o.cfg.UpdateGap))
	be.Zero(o.sumSq)
	grads := make([]*gpu.Tensor, len(m.Params))
	for i, p := range m.Params {
		grads[i] = p.Grad
	}
	be.SumSquares(o.sumSq, grads...)
	be.ClipScale(o.clip, o.sumSq, float32(o.cfg.GradClip))
	for i, p := range m.Params {
		hp := gpu.AdamParams{LR: float32(lr), Beta1: float32(o.cfg.Beta1), Beta2: float32(o.cfg.Beta2),
			Eps: float32(o.cfg.Eps), Scale: p.Scale, Step: o.Step}
		if p.Decay {
			hp.WeightDecay = float32(o.cfg.WeightDecay)
		}
		w := p.Updatable()
		if !p.Compressed() {
			be.AdamW(w, p.Grad, o.M[i], o.V[i], o.clip, hp)
			continue
		}
		hp.Eps = float32(o.cfg.CompactEps)
		dir := o.dir.Rows(0, p.Grad.Len()).Reshape(p.Grad.Shape...)
		be.AdamDirection(dir, p.Grad, o.M[i], o.V[i], o.clip, hp)
		if hp.WeightDecay != 0 {
			be.Scale(w, 1-hp.LR*hp.WeightDecay)
		}
		// W (rows, n) -= lr * N (rows, r) P^T; alpha is already in N.
		be.Gemm(w, dir, m.FillProjection(o.proj, p.Layer, p.Group), false, true, -hp.LR, 1)
	}
	if err := m.SyncWeights(); err != nil {
		return 0, err
	}
	sq, err := be.Download(o.sumSq)
	if err != nil {
		return 0, fmt.Errorf("gradient norm: %w", err)
	}
	return math.Sqrt(float64(sq[0])), nil
}

// Free releases the optimizer state.
func (o *Optimizer) Free() {
	for i := range o.M {
		o.be.Free(o.M[i])
		o.be.Free(o.V[i])
	}
	for _, t := range []*gpu.Tensor{o.dir, o.proj, o.sumSq, o.clip} {
		if t != nil {
			o.be.Free(t)
		}
	}
}
