package model

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
)

// Fused update: with Options.FusedUpdate the training pass calls the
// UpdateHook as soon as a group of gradients is final and no later step of
// the pass reads those weights:
//
//   - an untied LM head (or a classifier's score head) at the end of the
//     forward's head, after its last use for the hidden-state gradient;
//   - the final norm right after its backward;
//   - block l after its whole backward: every weight of the block, recompute
//     included, is read only there, and the input gradient dx = do W of each
//     layer is computed before the hook runs;
//   - the embedding after the embedding backward, so a tied embedding
//     updates only once both its head and its embedding contributions are in.
//
// So without accumulation the model keeps no gradient arena: block
// gradients need one block's worth of scratch (blockGrad, shared by every
// block and the final norm) and the embedding and heads one buffer
// (outerGrad) that the untied head hands over to the embedding once
// updated. Each buffer is zeroed after its hook, ready for the next group.
//
// With gradient accumulation (Options.GradAccum > 1) a step sums the
// gradients of several micro-batches, so they need a home across passes:
// the gradient arena, as unfused (CompAct's compressed G in r-space, the
// full-rank params in fp32, each accumulated by the backward's own += as
// unfused accumulates them). The hook runs during the last micro-batch's
// pass only (the passes since ZeroGrads are counted) and reads the
// finished sums there; ZeroGrads clears the arena for the next step. So the
// step is the unfused step, update for update, with the updates moved into
// the last backward. With bf16 sums (accum.go) the passes form their
// gradients in the scratch above and add each group into the bf16 arena
// at the same points, fused or not.
//
// A pipelined update (Options.PipelinedUpdate) may finish a group one hook
// late: block l's gradients are still being reduced across ranks while
// block l-1's backward runs. So consecutive blocks alternate between two
// block buffers (block l in buffer l%2, the final norm in the one block
// L-1 does not use), and the hook, not the model, clears each group's
// gradients once it has updated them, before the backward that next writes
// that buffer. The untied head's gradients are finished at the final norm's
// hook, before the embedding backward accumulates into outerGrad.

// UpdateHook updates ps from their gradients (valid only during the call's
// queued work: the model zeroes them right after; pipelined, until the
// hook's next call or the end of the pass, and the hook clears them).
type UpdateHook func(ps []*Param)

// SetUpdateHook installs the optimizer's hook for a fused-update training
// pass; nil removes it. A fused model refuses a training forward without it.
func (m *Model) SetUpdateHook(h UpdateHook) { m.hook = h }

// Fused reports whether the model was built for a fused update.
func (m *Model) Fused() bool { return m.Opts.FusedUpdate }

// allocGradScratch gives every param's pass gradient storage in the two
// scratch buffers: each block's params at the same offsets of blockGrad
// (the final norm at its start), the embedding and the heads at the start
// of outerGrad. Without an arena that is Grad too; with bf16 sums Grad stays
// in the arena (accum.go).
func (m *Model) allocGradScratch() error {
	blockN, outerN := roundUp(numel(m.normF.gshape)), 0
	local := map[*Param]int{}
	for _, ps := range m.arena.blockParams {
		n := 0
		for _, p := range ps {
			local[p] = n
			n += roundUp(numel(p.gshape))
		}
		blockN = max(blockN, n)
	}
	for _, p := range []*Param{m.wte, m.lmHead, m.score} {
		if p != nil {
			outerN = max(outerN, roundUp(numel(p.gshape)))
		}
	}
	var err error
	if m.arena.blockGrad, err = m.be.Alloc("grads.block", gpu.Grads, gpu.Full, blockN); err != nil {
		return err
	}
	if m.Opts.PipelinedUpdate {
		if m.arena.blockGrad2, err = m.be.Alloc("grads.block.pipelined", gpu.Grads, gpu.Full, blockN); err != nil {
			return err
		}
	}
	if m.arena.outerGrad, err = m.be.Alloc("grads.embedding", gpu.Grads, gpu.Full, outerN); err != nil {
		return err
	}
	for _, p := range m.Params {
		buf, off := m.blockBuf(len(m.blocks)), 0 // the final norm's
		if o, ok := local[p]; ok {
			buf, off = m.blockBuf(p.Layer), o
		} else if p != m.normF {
			buf = m.arena.outerGrad
		}
		p.passGrad = view(buf, off, p.gshape)
		if m.arena.grad == nil {
			p.Grad = p.passGrad
		}
	}
	return nil
}

// blockGroups lists each block's params in the order its hook gets them.
func (m *Model) blockGroups() [][]*Param {
	groups := make([][]*Param, len(m.blocks))
	for l := range m.blocks {
		b := &m.blocks[l]
		ps := []*Param{b.attnNorm}
		ps = append(ps, b.lin[:linGate]...)
		ps = append(ps, b.mlpNorm)
		groups[l] = append(ps, b.lin[linGate:]...)
	}
	return groups
}

// blockBuf is the gradient buffer of block l (l = Layers: the final norm).
func (m *Model) blockBuf(l int) *gpu.Tensor {
	if m.arena.blockGrad2 != nil && l%2 == 1 {
		return m.arena.blockGrad2
	}
	return m.arena.blockGrad
}

// checkHook refuses a fused training pass that no optimizer step receives:
// its gradients would be overwritten unused.
func (m *Model) checkHook() error {
	if m.Opts.FusedUpdate && m.hook == nil {
		return fmt.Errorf("fused update: a training forward outside an optimizer step (no update hook)")
	}
	return nil
}

// updateNow hands ps to the hook during a step's last pass and clears
// their scratch buffer.
func (m *Model) updateNow(buf *gpu.Tensor, ps ...*Param) {
	if !m.Opts.FusedUpdate || m.hook == nil || m.pass < max(1, m.Opts.GradAccum) {
		return
	}
	m.updating = true
	m.hook(ps)
	if !m.Opts.PipelinedUpdate && m.arena.grad == nil { // an arena is cleared by the next ZeroGrads
		m.be.Zero(buf)
	}
}
