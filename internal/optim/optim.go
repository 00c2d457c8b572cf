// Package optim is the optimizer: AdamW for full-rank params and CompAct's
// compressed Adam for the rest, its state (fp32, bf16 or 8-bit moments;
// fp32-master or master-free bf16 weights), the learning-rate schedule and
// ZeRO-1 sharding of the state across data-parallel ranks.
//
// There is one update (update.go): every param takes it, the same way
// whether the step runs after the training pass (Apply), inside it from the
// model's update hook as soon as the param's gradient is final (Begin,
// Finish; train.fused_update), with gradients reduced across ranks before,
// or on this rank's share only (zero.go). Precision is data (precision.go):
// one switch turns it into the kernels' operands, and the backend's Adam
// kernel takes the storage of every tensor as an argument. So an update is
// the same per element in every mode, and the CPU gives the same bits
// fused or not, sharded or not, resumed or not.
package optim

import (
	"fmt"
	"math"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/projection"
)

// Model is what the optimizer asks of the model it updates (*model.Model
// is one): the layout of what it updates, the projections of the step's
// epoch, the fused pass's hook, the master of a ZeRO-1 share, and the
// tensor I/O of checkpoints.
type Model interface {
	Backend() gpu.Backend
	Layout() model.Layout
	SetEpoch(epoch uint32)
	SetStep(step int) // the step the coming passes form gradients for (model/accum.go)
	Projection(layer int, g *model.Group) *gpu.Tensor
	SetUpdateHook(h model.UpdateHook)
	AllocMaster(lo, hi int) error
	ReadParam(p *model.Param, t *gpu.Tensor) ([]float32, []int, error)
	WriteParam(p *model.Param, t *gpu.Tensor, data []float32) error
	WeightTensors() ([]model.NamedTensor, error)
}

// Config holds the Adam hyper-parameters shared by every param, the
// precision and this rank's share of the state.
type Config struct {
	Beta1, Beta2 float64
	Eps          float64 // full-rank AdamW
	CompactEps   float64 // compressed Adam (paper: 1e-6)
	WeightDecay  float64
	GradClip     float64 // global-norm clip; <= 0 disables
	UpdateGap    int
	Form         gpu.AdamForm // torch's or HuggingFace's bias correction, for every param
	Precision    Precision
	Shard        Shard // ZeRO-1: this rank's share of the state (zero.go)
}

// Optimizer is AdamW for full-rank params and CompAct's compressed Adam for
// the rest: moments of shape (rows, r), W <- W - lr*alpha*N P^T.
type Optimizer struct {
	cfg    Config
	plan   plan
	be     gpu.Backend
	model  Model
	layout model.Layout
	state  moments
	// M and V are every param's moments, per model.Params index, shaped
	// like its gradient (views of the state; 8-bit codes for int8 state);
	// nil where another rank owns the param.
	M, V  []*gpu.Tensor
	shard *zeroShard
	dir   *gpu.Tensor // the compressed Adam direction N (Low: see compressedInPlace)
	dBuf  *gpu.Tensor // D = -lr N P^T of rounded compressed updates (update.go)
	chunk int         // elements of D at most: updateChunk (tests make it small)
	sumSq *gpu.Tensor // the squared gradient norm of step normStep
	clip  *gpu.Tensor // 1 unless grad_clip > 0 clips
	fused fusedStep
	Step  int // optimizer steps taken
	// AdamStart is the steps taken before the moments last started from
	// zero (a --weights-only resume): the bias correction counts from here.
	AdamStart int
	// normStep is the step whose gradient norm sumSq holds (0: none);
	// skipNorm says the coming step need not compute it (Begin).
	normStep int
	skipNorm bool
	// dp, in a data-parallel job, sums the gradients over the ranks (a fused
	// group's before it updates; sharded, a reduce-scatter) and gathers
	// weights and moments (zero.go); nil in a plain run.
	dp Exchange
}

// New allocates zeroed moments for the parameters of m this rank owns (all
// of them unless cfg.Shard splits them), laid out like the gradient
// layout's owned range, with per-parameter views.
func New(m Model, cfg Config) (*Optimizer, error) {
	pl, err := cfg.Precision.plan()
	if err != nil {
		return nil, err
	}
	o := &Optimizer{cfg: cfg, plan: pl, be: m.Backend(), model: m, layout: m.Layout(), chunk: updateChunk}
	lay := o.layout
	if lay.Fused && cfg.GradClip > 0 {
		return nil, fmt.Errorf("optimizer: a fused update cannot clip by the global norm (grad_clip %g)", cfg.GradClip)
	}
	if cfg.Precision.RoundWeights != lay.MasterFree {
		return nil, fmt.Errorf("optimizer: master-free weights %v, but the model was built with master-free %v", cfg.Precision.RoundWeights, lay.MasterFree)
	}
	if n := int64(lay.Weights.Len()); cfg.Precision.Lean() && n > gpu.MaxRoundElements {
		return nil, fmt.Errorf("optimizer: %d weight elements exceed the rounding counter's %d", n, gpu.MaxRoundElements)
	}
	if o.shard, err = newZeroShard(lay, cfg.Shard); err != nil {
		return nil, err
	}
	if err := o.shardMaster(); err != nil {
		o.Free()
		return nil, err
	}
	if err := o.alloc(); err != nil {
		o.Free()
		return nil, err
	}
	return o, nil
}

// alloc allocates the moments, the update's buffers and the norm scalars.
func (o *Optimizer) alloc() error {
	var err error
	if o.state, err = newMoments(o.be, o.plan, o.shard.momentBase(), o.shard.momentLen()); err != nil {
		return err
	}
	for _, p := range o.layout.Params {
		var mv, vv *gpu.Tensor
		if o.shard.owns(p) {
			m, v := o.state.at(p.GradOff, p.Grad.Len())
			mv, vv = m.Data.Reshape(p.Grad.Shape...), v.Data.Reshape(p.Grad.Shape...)
		}
		o.M, o.V = append(o.M, mv), append(o.V, vv)
	}
	if err := o.allocUpdate(); err != nil {
		return err
	}
	if o.sumSq, err = o.be.Alloc("grad_norm_sq", gpu.Other, gpu.Full, 1); err != nil {
		return err
	}
	if o.clip, err = o.be.Alloc("clip_scale", gpu.Other, gpu.Full, 1); err != nil {
		return err
	}
	// Without clipping the scale stays 1 (ClipScale runs only when it clips).
	return o.be.Upload(o.clip, []float32{1})
}

// BeginStep selects the projection epoch of the coming step, so that the
// forward passes save z through the same P that the update will use, and
// names the step to the model (the key of bf16 gradient sums' rounding).
func (o *Optimizer) BeginStep() {
	o.model.SetEpoch(projection.Epoch(o.Step+1, o.cfg.UpdateGap))
	o.model.SetStep(o.Step + 1)
}

// Update takes one optimizer step at learning rate lr with the gradients
// accumulated in the model, and returns the global gradient norm before
// clipping (compressed gradients included).
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

// Reset zeroes the moments and the step count: the state of a run that
// has not begun (a rollback to the initialisation).
func (o *Optimizer) Reset() {
	o.state.zero(o.be)
	o.Step, o.normStep = 0, 0
}

// Free releases the optimizer state.
func (o *Optimizer) Free() {
	o.state.free(o.be)
	for _, t := range []*gpu.Tensor{o.dir, o.dBuf, o.sumSq, o.clip} {
		if t != nil {
			o.be.Free(t)
		}
	}
}
