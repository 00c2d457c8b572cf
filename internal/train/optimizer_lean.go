package train

// Lean optimizer precision: master-free bf16 weights and bf16 Adam moments.
// Both keep the Adam arithmetic of the fp32 path untouched: a chunk of the
// narrow tensors is widened into fp32 staging buffers, the usual kernel
// (AdamW, AdamDirection, the decompression GEMM) runs on the staged copy,
// and the result is written back with the deterministic stochastic rounding
// of gpu.Backend.StochasticRound, whose noise depends on (train.seed, step,
// element) only. So the CPU reference and CUDA round identical fp32 values
// to identical bits, and a resumed run draws the same noise.
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

// stageChunk bounds the fp32 staging buffers (elements each): 32 MiB, small
// beside the master copy it replaces, large enough that the extra launches
// cost nothing measurable.
const stageChunk = 1 << 23

// staging holds the fp32 buffers of the lean paths; nil fields are unused.
type staging struct {
	w, m, v *gpu.Tensor
	chunk   int
}

func (o *Optimizer) staged() bool { return o.cfg.Precision.MasterFree || o.cfg.Precision.StateBF16 }

// momentPrecision is the storage of exp_avg and exp_avg_sq.
func momentPrecision(pc PrecisionConfig) gpu.Precision {
	if pc.StateBF16 {
		return gpu.Low
	}
	return gpu.Full
}

// allocStaging allocates the staging buffers (Workspace) the options need.
func (o *Optimizer) allocStaging() error {
	pc := o.cfg.Precision
	if pc.MasterFree != o.model.Opts.MasterFree {
		return fmt.Errorf("optimizer: master-free weights %v, but the model was built with master-free %v", pc.MasterFree, o.model.Opts.MasterFree)
	}
	if !o.staged() {
		return nil
	}
	if n := int64(o.model.WeightArena().Len()); n > gpu.MaxRoundElements {
		return fmt.Errorf("optimizer: %d weight elements exceed the rounding counter's %d", n, gpu.MaxRoundElements)
	}
	longest := 0
	for _, s := range o.model.Segments() {
		longest = max(longest, s.Len, s.GLen)
	}
	o.stage.chunk = min(stageChunk, longest)
	var err error
	if pc.MasterFree {
		if o.stage.w, err = o.be.Alloc("stage.weights", gpu.Workspace, gpu.Full, o.stage.chunk); err != nil {
			return err
		}
	}
	if pc.StateBF16 {
		if o.stage.m, err = o.be.Alloc("stage.exp_avg", gpu.Workspace, gpu.Full, o.stage.chunk); err != nil {
			return err
		}
		if o.stage.v, err = o.be.Alloc("stage.exp_avg_sq", gpu.Workspace, gpu.Full, o.stage.chunk); err != nil {
			return err
		}
	}
	return nil
}

func (o *Optimizer) freeStaging() {
	for _, t := range []*gpu.Tensor{o.stage.w, o.stage.m, o.stage.v} {
		if t != nil {
			o.be.Free(t)
		}
	}
}

// round keys the noise of a rounding into arena element off of stream.
func (o *Optimizer) round(stream uint32, off int) gpu.RoundParams {
	return gpu.RoundParams{Seed: o.cfg.Precision.Seed, Stream: stream, Step: uint32(o.Step), Offset: int64(off)}
}

// loadMoments returns the moments of grad-arena elements [off, off+n) as
// fp32 tensors the Adam kernels can update: the arena views themselves, or
// staged copies of bf16 moments.
func (o *Optimizer) loadMoments(off, n int) (m, v *gpu.Tensor, err error) {
	m, v = o.moments(off, n)
	if !o.cfg.Precision.StateBF16 {
		return m, v, nil
	}
	ms, vs := o.stage.m.Rows(0, n), o.stage.v.Rows(0, n)
	if err := o.be.Copy(ms, m); err != nil {
		return nil, nil, err
	}
	if err := o.be.Copy(vs, v); err != nil {
		return nil, nil, err
	}
	return ms, vs, nil
}

// storeMoments rounds staged moments back into bf16 storage.
func (o *Optimizer) storeMoments(off int, ms, vs *gpu.Tensor) {
	if !o.cfg.Precision.StateBF16 {
		return
	}
	m, v := o.moments(off, ms.Len())
	o.be.StochasticRound(m, ms, o.round(gpu.StreamExpAvg, off))
	o.be.StochasticRound(v, vs, o.round(gpu.StreamExpAvgSq, off))
}

// adamWStaged is AdamW over the n weights at weight-arena offset wOff
// (gradients g at gradient-layout offset gOff), chunk by chunk through the
// staging buffers. Noise keys are arena offsets, so a segment and its
// params one by one round alike.
func (o *Optimizer) adamWStaged(wOff, gOff, n int, g *gpu.Tensor, hp gpu.AdamParams) error {
	be, m := o.be, o.model
	w, upd := m.WeightArena(), m.UpdateArena()
	for off := 0; off < n; off += o.stage.chunk {
		k := min(o.stage.chunk, n-off)
		wo := wOff + off
		p := upd.Rows(wo, wo+k)
		if o.cfg.Precision.MasterFree {
			p = o.stage.w.Rows(0, k)
			if err := be.Copy(p, w.Rows(wo, wo+k)); err != nil {
				return err
			}
		}
		mm, vv, err := o.loadMoments(gOff+off, k)
		if err != nil {
			return err
		}
		be.AdamW(p, g.Rows(off, off+k), mm, vv, o.clip, hp)
		if o.cfg.Precision.MasterFree {
			be.StochasticRound(w.Rows(wo, wo+k), p, o.round(gpu.StreamWeights, wo))
		}
		o.storeMoments(gOff+off, mm, vv)
	}
	return nil
}

// adamDirectionStaged is AdamDirection of the gradients g (at gradient-layout
// offset gOff) into dir with bf16 moments, chunk by chunk.
func (o *Optimizer) adamDirectionStaged(dir *gpu.Tensor, gOff int, g *gpu.Tensor, hp gpu.AdamParams) error {
	n := g.Len()
	for off := 0; off < n; off += o.stage.chunk {
		k := min(o.stage.chunk, n-off)
		mm, vv, err := o.loadMoments(gOff+off, k)
		if err != nil {
			return err
		}
		o.be.AdamDirection(dir.Rows(off, off+k), g.Rows(off, off+k), mm, vv, o.clip, hp)
		o.storeMoments(gOff+off, mm, vv)
	}
	return nil
}

// directionLen is the length of the compressed Adam direction buffer: the
// whole compressed segment; one param's gradient with a fused update, which
// decompresses param by param; at most one staging chunk when master-free
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
		return min(n, stageChunk)
	}
	return n
}

// compressedSR is the compressed update for master-free weights of every
// compressed param in segment s (this rank's), P generated once per
// projection group.
func (o *Optimizer) compressedSR(s model.Segment, hp gpu.AdamParams) error {
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
		if err := o.compressedSRParam(p, P, hp); err != nil {
			return err
		}
	}
	return nil
}

// compressedSRParam updates one master-free compressed param p, one block
// of rows at a time: the Adam direction N of those rows (moments staged
// when bf16), then the fp32 value (1 - lr*wd) W - lr N P^T formed in the
// staging buffer and rounded into W once. Blocks of rows keep the direction
// and the staged weights at one chunk each.
func (o *Optimizer) compressedSRParam(p *model.Param, P *gpu.Tensor, hp gpu.AdamParams) error {
	be, arena := o.be, o.model.WeightArena()
	rows, n, r := p.W.Shape[0], p.W.Shape[1], p.Grad.Shape[1]
	g := p.Grad.Reshape(p.Grad.Len())
	step := max(1, o.stage.chunk/n)
	for r0 := 0; r0 < rows; r0 += step {
		r1 := min(rows, r0+step)
		k, gOff := (r1-r0)*r, p.GradOff+r0*r
		mm, vv, err := o.loadMoments(gOff, k)
		if err != nil {
			return err
		}
		dir := o.dir.Rows(0, k)
		be.AdamDirection(dir, g.Rows(r0*r, r0*r+k), mm, vv, o.clip, hp)
		o.storeMoments(gOff, mm, vv)
		wc := p.W.Rows(r0, r1)
		buf := o.stage.w.Rows(0, (r1-r0)*n).Reshape(r1-r0, n)
		if err := be.Copy(buf, wc); err != nil {
			return err
		}
		if hp.WeightDecay != 0 {
			be.Map(gpu.MapScale, buf, 1-hp.LR*hp.WeightDecay)
		}
		o.decompressInto(buf, dir.Reshape(r1-r0, r), P, hp.LR)
		be.StochasticRound(wc, buf, o.round(gpu.StreamWeights, wc.Off-arena.Off))
	}
	return nil
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
