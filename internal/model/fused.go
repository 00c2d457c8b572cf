package model

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
)

// Fused update: with Options.FusedUpdate the model keeps no gradient arena.
// The training pass calls the UpdateHook as soon as a group of gradients is
// final and no later step of the pass reads those weights:
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
// So block gradients need one block's worth of scratch (blockGrad, shared by
// every block and the final norm) and the embedding and heads one buffer
// (outerGrad) that the untied head hands over to the embedding once updated.
// Each buffer is zeroed after its hook, ready for the next group.
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

// allocGradScratch gives every param's Grad storage in the two scratch
// buffers: each block's params at the same offsets of blockGrad (the final
// norm at its start), the embedding and the heads at the start of outerGrad.
func (m *Model) allocGradScratch() error {
	blockN, outerN := roundUp(numel(m.normF.gshape)), 0
	m.arena.blockParams = make([][]*Param, len(m.blocks))
	local := map[*Param]int{}
	for l := range m.blocks {
		b := &m.blocks[l]
		ps := []*Param{b.attnNorm}
		ps = append(ps, b.lin[:linGate]...)
		ps = append(ps, b.mlpNorm)
		ps = append(ps, b.lin[linGate:]...)
		n := 0
		for _, p := range ps {
			local[p] = n
			n += roundUp(numel(p.gshape))
		}
		blockN = max(blockN, n)
		m.arena.blockParams[l] = ps
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
		p.Grad = view(buf, off, p.gshape)
	}
	return nil
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

// updateNow hands ps to the hook and clears their scratch buffer.
func (m *Model) updateNow(buf *gpu.Tensor, ps ...*Param) {
	if !m.Opts.FusedUpdate || m.hook == nil {
		return
	}
	m.updating = true
	m.hook(ps)
	if !m.Opts.PipelinedUpdate {
		m.be.Zero(buf)
	}
}
