package optim

// The Adam state: two arenas (exp_avg, exp_avg_sq) laid out like this
// rank's range of the gradient layout, in the plan's storage, and for 8-bit
// moments one fp32 scale per gpu.QuantBlock elements of each (a param starts
// on a block: the gradient layout aligns params to 128 elements). Outside
// the engine, in checkpoints, every moment is the values it decodes to, at
// its param's logical shape: F32 for fp32 and 8-bit moments, BF16 for bf16
// ones (both lossless). 8-bit moments are quantized again when loaded,
// which gives back their codes and scales (gpu/quant8.go), so a resumed run
// continues bit for bit.

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/model"
)

// moments is the Adam state of one rank.
type moments struct {
	m, v           *gpu.Tensor // Full, Low or Code8
	mScale, vScale *gpu.Tensor // Code8 only: the blocks' scales
	base, block    int         // gradient-layout element of m[0]; elements per scale
}

// newMoments allocates n zeroed elements of each moment starting at
// gradient-layout element base.
func newMoments(be gpu.Backend, pl plan, base, n int) (moments, error) {
	s := moments{base: base, block: pl.block}
	var err error
	if s.m, err = be.Alloc("exp_avg", gpu.Optimizer, pl.state, n); err != nil {
		return s, err
	}
	if s.v, err = be.Alloc("exp_avg_sq", gpu.Optimizer, pl.state, n); err != nil {
		return s, err
	}
	if s.block == 1 {
		return s, nil
	}
	if base%s.block != 0 {
		return s, fmt.Errorf("optimizer: moments start at element %d, not on a %d-element block", base, s.block)
	}
	blocks := (n + s.block - 1) / s.block
	if s.mScale, err = be.Alloc("exp_avg.scale", gpu.Optimizer, gpu.Full, blocks); err != nil {
		return s, err
	}
	s.vScale, err = be.Alloc("exp_avg_sq.scale", gpu.Optimizer, gpu.Full, blocks)
	return s, err
}

// at is the moments of gradient-layout elements [off, off+n), which this
// rank owns; 8-bit moments start on a block.
func (s *moments) at(off, n int) (m, v gpu.Moment) {
	off -= s.base
	m, v = gpu.Moment{Data: s.m.Rows(off, off+n)}, gpu.Moment{Data: s.v.Rows(off, off+n)}
	if s.block > 1 {
		lo, hi := off/s.block, (off+n+s.block-1)/s.block
		m.Scale, v.Scale = s.mScale.Rows(lo, hi), s.vScale.Rows(lo, hi)
	}
	return m, v
}

func (s *moments) tensors() []*gpu.Tensor {
	var out []*gpu.Tensor
	for _, t := range []*gpu.Tensor{s.m, s.v, s.mScale, s.vScale} {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}

func (s *moments) zero(be gpu.Backend) {
	for _, t := range s.tensors() {
		be.Zero(t)
	}
}

func (s *moments) free(be gpu.Backend) {
	for _, t := range s.tensors() {
		be.Free(t)
	}
}

// momentNames are the checkpoint names of p's two moments.
func momentNames(p *model.Param) [2]string {
	return [2]string{p.Name + ".exp_avg", p.Name + ".exp_avg_sq"}
}

// values downloads moment j (0: m, 1: v) of p, which this rank owns, as the
// values it holds in the engine's layout (8-bit codes decoded).
func (o *Optimizer) values(p *model.Param, j int) ([]float32, error) {
	mo := o.moment(p, j)
	data, err := o.be.Download(mo.Data)
	if err != nil {
		return nil, err
	}
	var scales []float32
	if mo.Scale != nil {
		if scales, err = o.be.Download(mo.Scale); err != nil {
			return nil, err
		}
	}
	return o.plan.decode(data, scales, j == 0), nil
}

// store sets moment j of p, which this rank owns, from values in the
// engine's layout.
func (o *Optimizer) store(p *model.Param, j int, vals []float32) error {
	mo := o.moment(p, j)
	data, scales := o.plan.encode(vals, j == 0)
	if err := o.be.Upload(mo.Data, data); err != nil || mo.Scale == nil {
		return err
	}
	return o.be.Upload(mo.Scale, scales)
}

// moment is moment j (0: m, 1: v) of p.
func (o *Optimizer) moment(p *model.Param, j int) gpu.Moment {
	m, v := o.state.at(p.GradOff, p.Grad.Len())
	return [2]gpu.Moment{m, v}[j]
}

// MomentDType is the safetensors dtype of the moments in checkpoints.
func (o *Optimizer) MomentDType() string { return o.plan.fileDType }

// Moments returns every param's moments (named as in optimizer.safetensors,
// at their logical shapes) on rank root; other ranks get nil. Sharded,
// every rank must call it: each moment travels from its owner by a
// broadcast through the param's gradient (dead between steps, and shaped
// like its moments), which is zeroed after.
func (o *Optimizer) Moments(root int) ([]model.NamedTensor, error) {
	z := o.shard
	if z.sharded() {
		if err := o.needExchange(); err != nil {
			return nil, err
		}
	}
	var out []model.NamedTensor
	for _, p := range o.layout.Params {
		owner := z.owner[p]
		for j, name := range momentNames(p) {
			var data []float32
			var shape []int
			if z.rank == owner {
				vals, err := o.values(p, j)
				if err != nil {
					return nil, fmt.Errorf("moments of %s: %w", p.Name, err)
				}
				if owner == root {
					data, shape = p.HostParam(vals, p.Grad.Shape)
				} else if err := o.be.Upload(p.Grad, vals); err != nil {
					return nil, err
				}
			}
			if owner != root {
				if err := o.dp.Broadcast(p.Grad, owner); err != nil {
					return nil, fmt.Errorf("moments of %s from rank %d: %w", p.Name, owner, err)
				}
				if z.rank == root {
					var err error
					if data, shape, err = o.model.ReadParam(p, p.Grad); err != nil {
						return nil, err
					}
				}
				o.be.Zero(p.Grad)
			}
			if z.rank == root {
				out = append(out, model.NamedTensor{Name: name, Shape: shape, Data: data})
			}
		}
	}
	return out, nil
}

// LoadMoments restores the moments of the params this rank owns from f, the
// optimizer.safetensors of checkpoint dir (every rank reads the one file).
func (o *Optimizer) LoadMoments(f *model.SafetensorsFile, dir string) error {
	for i, p := range o.layout.Params {
		if o.M[i] == nil { // another rank's share
			continue
		}
		for j, name := range momentNames(p) {
			ti, ok := f.Tensors[name]
			if !ok {
				return fmt.Errorf("checkpoint %s: optimizer state lacks %s", dir, name)
			}
			if want := p.LogicalShape(o.M[i]); fmt.Sprint(ti.Shape) != fmt.Sprint(want) {
				return fmt.Errorf("checkpoint %s: %s has shape %v, the run needs %v (was CompAct configured differently?)", dir, name, ti.Shape, want)
			}
			data, err := f.Float32(name)
			if err != nil {
				return err
			}
			if err := model.CheckFinite(name, data); err != nil {
				return fmt.Errorf("%s: %w", f.Path, err)
			}
			if j == 1 {
				for k, v := range data {
					if v < 0 {
						return fmt.Errorf("%s: tensor %s holds a negative second moment (%g at element %d)", f.Path, name, v, k)
					}
				}
			}
			// The engine layout (zero in the padding), laid out on the host:
			// the gradient, shaped like the moments, may be a bf16 arena
			// (train.grad_accum_state bf16) that would round them.
			vals, err := p.HostPad(data, p.Grad.Shape)
			if err != nil {
				return err
			}
			if err := o.store(p, j, vals); err != nil {
				return fmt.Errorf("%s: %s: %w", f.Path, name, err)
			}
		}
	}
	return nil
}
