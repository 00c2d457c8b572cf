package model

// One LLaMA decoder block: x + o(attention(rope(q, k), v)) of norm(x), then
// + down(silu(gate) * up) of norm of that. The training forward (and its
// recomputation in backward) and KV-cache decoding run this same code;
// a blockPass says how attention sees the other positions and what is
// saved for backward.

import "github.com/compact-llm/compact/internal/gpu"

// blockTensors are what one pass through a block reads and writes. The
// training forward passes a layer's activations (layerActs) over B*T rows;
// decoding passes one row per sequence with x, xmid and out one tensor, so
// the residual sums add in place.
type blockTensors struct {
	x, xmid, out *gpu.Tensor // input, residual after attention, output (nil: stop before down's GEMM)
	h, a         *gpu.Tensor // scratch: norm output, silu(gate)*up
	rstd1, rstd2 *gpu.Tensor // the norms' statistics; nil: not kept
	q, k, v, att *gpu.Tensor
	gate, up     *gpu.Tensor
}

// blockPass is how one pass through the blocks attends and what it keeps.
type blockPass interface {
	// attend rotates t.q and t.k to their positions and writes into t.att
	// the attention over every position the pass can see.
	attend(l int, t *blockTensors) error
	// save keeps what backward needs of in, the input of the users linears
	// of block l.
	save(l int, in *gpu.Tensor, users ...linear)
}

// block runs block l.
func (m *Model) block(l int, t *blockTensors, pass blockPass) error {
	be, b := m.be, &m.blocks[l]
	eps := float32(m.Cfg.RMSEps)

	be.RMSNorm(t.h, t.rstd1, t.x, b.attnNorm.W, eps)
	m.linearFwd(t.q, t.h, b.lin[linQ])
	m.linearFwd(t.k, t.h, b.lin[linK])
	m.linearFwd(t.v, t.h, b.lin[linV])
	pass.save(l, t.h, linQ, linK, linV)
	if err := pass.attend(l, t); err != nil {
		return err
	}
	if err := m.carry(t.xmid, t.x); err != nil {
		return err
	}
	be.Gemm(t.xmid, t.att, b.lin[linO].W, false, true, 1, 1)

	be.RMSNorm(t.h, t.rstd2, t.xmid, b.mlpNorm.W, eps)
	m.linearFwd(t.gate, t.h, b.lin[linGate])
	m.linearFwd(t.up, t.h, b.lin[linUp])
	pass.save(l, t.h, linGate, linUp)
	be.SwiGLU(t.a, t.gate, t.up)
	pass.save(l, t.a, linDown)
	if t.out == nil {
		return nil
	}
	if err := m.carry(t.out, t.xmid); err != nil {
		return err
	}
	be.Gemm(t.out, t.a, b.lin[linDown].W, false, true, 1, 1)
	return nil
}

// carry starts a residual sum in dst from src; nothing to do when they are
// one tensor.
func (m *Model) carry(dst, src *gpu.Tensor) error {
	if dst == src {
		return nil
	}
	return m.be.Copy(dst, src)
}

// trainingPass is the forward over the uploaded batch: causal attention
// within each sequence, and, when compress is set, the compressed inputs z
// of CompAct's linears saved for their weight gradients.
type trainingPass struct {
	m        *Model
	compress bool
}

func (p trainingPass) attend(l int, t *blockTensors) error {
	be, a, cfg := p.m.be, p.m.acts, p.m.Cfg
	H, KV, D, theta := cfg.Heads, cfg.KVHeads, cfg.HeadDim(), float32(cfg.RopeTheta)
	be.RoPE(t.q, a.T, H, D, theta, false)
	be.RoPE(t.k, a.T, KV, D, theta, false)
	be.Attention(t.att, a.layers[l].lse, t.q, t.k, t.v, a.B, a.T, H, KV, D)
	return nil
}

func (p trainingPass) save(l int, in *gpu.Tensor, users ...linear) {
	if p.compress {
		p.m.compress(l, &p.m.acts.layers[l], in, users...)
	}
}

// blockForward runs block l on its saved input la.x into next (nil: only
// rebuild what backward needs), saving the activations of the policy; z
// only when compress is set.
func (m *Model) blockForward(l int, next *gpu.Tensor, compress bool) error {
	a, la := m.acts, &m.acts.layers[l]
	t := blockTensors{x: la.x, xmid: la.xmid, out: next, h: a.h, a: a.a, rstd1: la.rstd1, rstd2: la.rstd2,
		q: la.q, k: la.k, v: la.v, att: la.att, gate: la.gate, up: la.up}
	return m.block(l, &t, trainingPass{m: m, compress: compress})
}

// forwardCompresses reports whether a forward pass must save z: only a
// training pass, and not under block recompute, where z lives in scratch
// shared by every layer (activations.go) that the backward's rerun of the
// block overwrites before any read: there each of the forward's z = x P
// GEMMs (and its P) would be wasted. The compressed LM head's z.head is the
// head's own (lmhead.go) and unaffected.
func (m *Model) forwardCompresses(train bool) bool {
	return train && m.Opts.Recompute != RecomputeBlock
}
