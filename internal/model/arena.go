package model

import (
	"fmt"
	"sort"

	"github.com/compact-llm/compact/internal/gpu"
)

// Parameters, gradients and master weights live in three flat arenas, one
// allocation each, and every Param's tensors are views into them. Arenas
// are ordered by update class, so the optimizer updates each class with one
// fused launch, zeroes all gradients with one memset and takes the global
// norm in one pass. Each view starts on a 128-element boundary (256 bytes in
// bf16) so GEMMs on it keep their aligned kernels; the padding stays zero.

// updateClass groups parameters that take the same optimizer update.
type updateClass int

const (
	classDecay      updateClass = iota // full-rank matrices: AdamW with weight decay
	classOProj                         // o_proj under CompAct: AdamW scaled by o_proj_scale*alpha
	classNoDecay                       // norm weights
	classCompressed                    // CompAct: compressed Adam, decompressed through P
	numClasses
)

const arenaAlign = 128

// Segment is a contiguous run of one update class in the arenas. Offsets are
// in elements; full-rank classes have the same offsets in the weight and
// gradient arenas because they come first.
type Segment struct {
	Class         updateClass
	Off, Len      int // in the weight and master arenas
	GradOff, GLen int // in the gradient arena
	Scale         float32
	Decay         bool
}

// Compressed reports whether the segment holds CompAct params.
func (s Segment) Compressed() bool { return s.Class == classCompressed }

type arenas struct {
	w, grad, master *gpu.Tensor
	masterBase      int // the weight-arena offset of master's first element (mastershard.go)
	segments        []Segment
	order           []*Param // params in arena order
	gradLen         int      // elements of the gradient layout (moments follow it)
	// Fused update (fused.go): no grad arena; a block's gradients live in
	// blockGrad until its update, embeddings/heads in outerGrad. A
	// pipelined update alternates the blocks between blockGrad and
	// blockGrad2 (nil otherwise).
	blockGrad, blockGrad2, outerGrad *gpu.Tensor
	blockParams                      [][]*Param // per block, in backward's update order
}

func roundUp(n int) int { return (n + arenaAlign - 1) / arenaAlign * arenaAlign }

func classOf(p *Param, compactOn bool) updateClass {
	switch {
	case p.Group != nil:
		return classCompressed
	case !p.Decay:
		return classNoDecay
	case compactOn && p.Scale != 1:
		return classOProj
	}
	return classDecay
}

func (m *Model) allocArenas() error {
	order := append([]*Param(nil), m.Params...)
	for _, p := range order {
		p.class = classOf(p, m.Opts.Compact.Enabled)
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].class < order[j].class })
	wOff, gOff := make([]int, len(order)), make([]int, len(order))
	var wN, gN int
	for i, p := range order {
		wOff[i], gOff[i] = wN, gN
		n := 1
		for _, d := range p.shape {
			n *= d
		}
		wN += roundUp(n)
		if p.Group != nil {
			n = p.shape[0] * p.Group.Cols
		}
		gN += roundUp(n)
	}
	var err error
	if m.arena.w, err = m.be.Alloc("weights", gpu.Weights, gpu.Low, wN); err != nil {
		return err
	}
	m.arena.gradLen = gN
	if m.keepsGradArena() {
		prec := gpu.Full
		if m.lowSums() {
			if int64(gN) > gpu.MaxRoundElements {
				return fmt.Errorf("bf16 gradient sums: %d elements exceed the rounding counter's %d", gN, gpu.MaxRoundElements)
			}
			prec = gpu.Low
		}
		if m.arena.grad, err = m.be.Alloc("grads", gpu.Grads, prec, gN); err != nil {
			return err
		}
	}
	if m.keepsMaster() && !m.Opts.ShardMaster {
		if m.arena.master, err = m.be.Alloc("master", gpu.Master, gpu.Full, wN); err != nil {
			return err
		}
	}
	for i, p := range order {
		n, g := 1, 1
		for _, d := range p.shape {
			n *= d
		}
		gshape := p.shape
		if p.Group != nil {
			gshape = []int{p.shape[0], p.Group.Cols}
		}
		for _, d := range gshape {
			g *= d
		}
		p.W = view(m.arena.w, wOff[i], p.shape)
		p.WOff, p.GradOff = wOff[i], gOff[i]
		p.gshape = gshape
		if m.arena.grad != nil {
			p.Grad = view(m.arena.grad, gOff[i], gshape)
		}
		if m.arena.master != nil {
			p.Master = view(m.arena.master, wOff[i], p.shape)
		}
		last := len(m.arena.segments) - 1
		if last < 0 || m.arena.segments[last].Class != p.class {
			m.arena.segments = append(m.arena.segments, Segment{Class: p.class, Off: wOff[i], GradOff: gOff[i],
				Scale: p.Scale, Decay: p.Decay})
			last++
		}
		s := &m.arena.segments[last]
		s.Len = wOff[i] + roundUp(n) - s.Off
		s.GLen = gOff[i] + roundUp(g) - s.GradOff
	}
	m.arena.order = order
	if m.Opts.FusedUpdate || m.lowSums() {
		m.arena.blockParams = m.blockGroups()
	}
	if !m.keepsGradArena() || m.lowSums() {
		return m.allocGradScratch()
	}
	for _, p := range m.Params {
		p.passGrad = p.Grad
	}
	return nil
}

// keepsGradArena reports whether gradients live in one arena: unfused, or
// fused with accumulation (fused.go), where sums span micro-batches.
func (m *Model) keepsGradArena() bool { return !m.Opts.FusedUpdate || m.Opts.GradAccum > 1 }

func view(arena *gpu.Tensor, off int, shape []int) *gpu.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return arena.Rows(off, off+n).Reshape(shape...)
}

// Layout is what the optimizer updates and where: the params in arena
// order (each with its W, Master and Grad views and its offsets), their
// update classes, and the arenas those views live in. Plain data: the
// optimizer reads it, the model keeps owning the storage.
type Layout struct {
	Params   []*Param  // params in the model's (HuggingFace) order, as checkpoints list them
	Order    []*Param  // the same params in arena order
	Segments []Segment // the update classes, in arena order
	// Weights is every weight, padding included (zero), as one tensor.
	Weights *gpu.Tensor
	// Master is the fp32 master copy of weight-arena elements [MasterBase,
	// MasterBase + Master.Len()) (all of them unless it is sharded); nil
	// without one. MasterPending: the model waits for AllocMaster.
	Master        *gpu.Tensor
	MasterBase    int
	MasterPending bool
	// Grads is every gradient, padding included (zero); nil with a fused
	// update that does not accumulate, whose gradients live in per-block
	// scratch. GradLen is the gradient layout's length (the moments'),
	// arena or not.
	Grads   *gpu.Tensor
	GradLen int
	// Fused: the training pass hands each group to the update hook once
	// its gradients are final (fused.go); Pipelined: the hook keeps them
	// past its call and clears them itself. MasterFree: the weights are
	// bf16 values updated without a master copy (masterfree.go).
	Fused, Pipelined, MasterFree bool
}

// Layout describes the model's parameters for its optimizer.
func (m *Model) Layout() Layout {
	a := &m.arena
	return Layout{Params: m.Params, Order: a.order, Segments: a.segments, Weights: a.w, Master: a.master, MasterBase: a.masterBase,
		MasterPending: m.masterPending(), Grads: a.grad, GradLen: a.gradLen,
		Fused: m.Opts.FusedUpdate, Pipelined: m.Opts.PipelinedUpdate, MasterFree: m.Opts.MasterFree}
}
