package train

// Lean optimizer precision: master-free bf16 weights and bf16 Adam moments.
// Both keep the Adam arithmetic of the fp32 path untouched: the fused lean
// ops (gpu.Backend.AdamWSR, AdamDirectionSR) read the narrow tensors, run
// the fp32 update of AdamW / AdamDirection and store each result with the
// deterministic stochastic rounding of gpu.Backend.StochasticRound, whose
// noise depends on (train.seed, step, element) only. So the CPU reference
// and CUDA round identical fp32 values to identical bits, a resumed run
// draws the same noise, and the fused ops give the bits of the staged
// composition (widen, update, round) they replace, in one launch.
//
// The compressed update of master-free weights forms
//
//	D = -lr * N P^T            (the decompression GEMM, fp32, beta = 0)
//	W = SR(fl(fl((1 - lr*wd) * W) + D))
//
// with gpu.Backend.DecayAddSR: each product and sum rounded to fp32 on its
// own, on both backends. (The staged path scaled an fp32 copy of W and let
// the GEMM add into it with beta = 1; the CPU's GEMM rounds alpha*sum and
// adds beta*c separately, so there the bits are the same.)
//
// Why stochastic rounding for both moments: with beta2 = 0.999 an update
// changes v by 0.1%, below half a bf16 ulp (0.2-0.4%), so round-to-nearest
// would leave v frozen where SR keeps it unbiased; m is rounded the same way
// for one simple rule.

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/model"
)

// Config values of train.weights and train.optimizer_state.
const (
	WeightsAuto   = "auto"    // bf16_sr for CompAct runs, master for full rank
	WeightsMaster = "master"  // fp32 master copy, bf16 compute copy (CUDA)
	WeightsBF16SR = "bf16_sr" // bf16 weights only, updates stochastically rounded
	StateFP32     = "fp32"
	StateBF16     = "bf16"
)

// WeightModes and OptimizerStates list the train.weights and
// train.optimizer_state values.
var (
	WeightModes     = []string{WeightsAuto, WeightsMaster, WeightsBF16SR}
	OptimizerStates = []string{StateFP32, StateBF16}
)

// MasterFree reports whether the run keeps bf16 weights without a master
// copy: train.weights bf16_sr, or auto for a CompAct run. On 60m and 32.8M
// tokens of real text (docs/training.md) CompAct r=0.25 with bf16_sr reached
// validation loss 2.2803 against 2.2814 with the fp32 master, so CompAct
// runs drop the master by default; full rank keeps it (2.2939 vs 2.2870).
func (c Config) MasterFree() bool {
	return c.Train.Weights == WeightsBF16SR || (c.Train.Weights == WeightsAuto && c.Compact.Enabled)
}

// PrecisionConfig selects the lean storage of weights and moments.
type PrecisionConfig struct {
	MasterFree bool   // train.weights = bf16_sr
	StateBF16  bool   // train.optimizer_state = bf16
	Seed       uint64 // key of the rounding noise (train.seed)
}

// updateChunk bounds the fp32 buffer of the master-free compressed update
// (elements): 32 MiB, small beside the master copy it replaces, large
// enough that the extra launches cost nothing measurable.
const updateChunk = 1 << 23

func (o *Optimizer) lean() bool { return o.cfg.Precision.MasterFree || o.cfg.Precision.StateBF16 }

// momentPrecision is the storage of exp_avg and exp_avg_sq.
func momentPrecision(pc PrecisionConfig) gpu.Precision {
	if pc.StateBF16 {
		return gpu.Low
	}
	return gpu.Full
}

// allocLean checks the lean options against the model and allocates the
// fp32 buffer (Workspace) of the master-free compressed update: one block
// of rows of the longest compressed weight this rank updates, at most
// updateChunk elements.
func (o *Optimizer) allocLean() error {
	pc := o.cfg.Precision
	if pc.MasterFree != o.model.Opts.MasterFree {
		return fmt.Errorf("optimizer: master-free weights %v, but the model was built with master-free %v", pc.MasterFree, o.model.Opts.MasterFree)
	}
	if !o.lean() {
		return nil
	}
	if n := int64(o.model.WeightArena().Len()); n > gpu.MaxRoundElements {
		return fmt.Errorf("optimizer: %d weight elements exceed the rounding counter's %d", n, gpu.MaxRoundElements)
	}
	if !pc.MasterFree {
		return nil
	}
	longest := 0
	for _, p := range o.model.Params {
		if p.Compressed() && o.shard.owns(p) {
			longest = max(longest, p.W.Len())
		}
	}
	if longest == 0 {
		return nil
	}
	var err error
	o.update, err = o.be.Alloc("compact.update", gpu.Workspace, gpu.Full, min(updateChunk, longest))
	return err
}

// round keys the noise of a rounding into arena element off of stream.
func (o *Optimizer) round(stream uint32, off int) gpu.RoundParams {
	return gpu.RoundParams{Seed: o.cfg.Precision.Seed, Stream: stream, Step: uint32(o.Step), Offset: int64(off)}
}

// rounding keys the lean stores of the weights at weight-arena offset wOff
// (rounded only when master-free) and of the moments at gradient-layout
// offset gOff.
func (o *Optimizer) rounding(wOff, gOff int) gpu.AdamRounding {
	return gpu.AdamRounding{Seed: o.cfg.Precision.Seed, Step: uint32(o.Step), Weights: o.cfg.Precision.MasterFree,
		WeightOff: int64(wOff), MomentOff: int64(gOff)}
}

// directionLen is the length of the compressed Adam direction buffer: the
// whole compressed segment; one param's gradient with a fused update, which
// decompresses param by param; at most one update chunk when master-free
// weights let each block of rows be updated as soon as its direction exists.
func (o *Optimizer) directionLen(s model.Segment) int {
	n := s.GLen
	if o.model.Fused() {
		n = 0
		for _, p := range o.model.Params {
			if p.Compressed() && o.shard.owns(p) {
				n = max(n, p.Grad.Len())
			}
		}
	}
	if o.cfg.Precision.MasterFree {
		return min(n, updateChunk)
	}
	return n
}

// compressedSR is the compressed update for master-free weights of every
// compressed param in segment s (this rank's), P generated once per
// projection group.
func (o *Optimizer) compressedSR(s model.Segment, hp gpu.AdamParams) {
	var P *gpu.Tensor
	lastLayer, lastGroup := -1, -1
	for _, p := range o.model.ArenaOrder() {
		if !p.Compressed() || !inSegment(p, s) {
			continue
		}
		if p.Layer != lastLayer || p.Group.ID != lastGroup {
			P = o.model.Projection(p.Layer, p.Group)
			lastLayer, lastGroup = p.Layer, p.Group.ID
		}
		o.compressedSRParam(p, P, hp)
	}
}

// compressedSRParam updates one master-free compressed param p, one block
// of rows at a time: the Adam direction N of those rows, D = -lr N P^T into
// the update buffer, then W = SR((1 - lr*wd) W + D) in one pass. Blocks of
// rows keep the direction and D at one chunk each. Shapes come from the
// tensors: the rank is the gradient's width.
func (o *Optimizer) compressedSRParam(p *model.Param, P *gpu.Tensor, hp gpu.AdamParams) {
	be, arena := o.be, o.model.WeightArena()
	rows, n, r := p.W.Shape[0], p.W.Shape[1], p.Grad.Shape[1]
	g := p.Grad.Reshape(p.Grad.Len())
	step := max(1, o.update.Len()/n)
	decay := 1 - float32(hp.LR*hp.WeightDecay) // the conversion keeps Go from fusing it
	for r0 := 0; r0 < rows; r0 += step {
		r1 := min(rows, r0+step)
		k, gOff := (r1-r0)*r, p.GradOff+r0*r
		dir := o.dir.Rows(0, k)
		o.direction(dir, gOff, g.Rows(r0*r, r0*r+k), hp)
		wc := p.W.Rows(r0, r1)
		d := o.update.Rows(0, (r1-r0)*n).Reshape(r1-r0, n)
		be.Gemm(d, dir.Reshape(r1-r0, r), P, false, true, -hp.LR, 0)
		be.DecayAddSR(wc, d, decay, o.round(gpu.StreamWeights, wc.Off-arena.Off))
	}
}

// momentDType is the safetensors dtype of the moments in checkpoints: BF16
// when they are stored in bf16 (lossless, half the file), else F32.
func (o *Optimizer) momentDType() string {
	if o.cfg.Precision.StateBF16 {
		return "BF16"
	}
	return "F32"
}

// roundLoadedMoments rounds moments read from a checkpoint to the nearest
// bf16 when the state is bf16, as a CUDA upload would, so the CPU holds the
// same values (a no-op for a BF16 file).
func (o *Optimizer) roundLoadedMoments(data []float32) {
	if !o.cfg.Precision.StateBF16 {
		return
	}
	for i, v := range data {
		data[i] = gpu.BF16Nearest(v)
	}
}
