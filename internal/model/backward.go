package model

import "github.com/compact-llm/compact/internal/gpu"

// Backward propagates the gradient left by a training Forward through the
// blocks to the embedding, accumulating every parameter's gradient: full
// gradients dW = do^T x for full-rank params, and CompAct's G = do^T z for
// compressed ones (x is then never needed). With a fused update each group
// is updated as soon as it is final (fused.go).
func (m *Model) Backward() {
	stop := m.Stop
	m.Stop = nil
	defer func() { m.Stop = stop }()
	m.BackwardInterruptible()
}

// BackwardInterruptible is Backward that polls Stop between blocks and
// returns ErrInterrupted, leaving partial gradients, once it reports true.
func (m *Model) BackwardInterruptible() error {
	be, a := m.be, m.acts
	be.Zero(a.dresid)
	be.RMSNormBackward(a.dresid, m.normF.passGrad, a.dh, a.final, m.normF.W, a.rstdF)
	m.gradsDone(m.blockBuf(len(m.blocks)), m.normF)
	for l := len(m.blocks) - 1; l >= 0; l-- {
		if m.stopped() {
			return ErrInterrupted
		}
		m.blockBackward(l)
		if m.arena.blockParams != nil {
			m.gradsDone(m.blockBuf(l), m.arena.blockParams[l]...)
		}
	}
	if m.stopped() { // block 0 may have stopped halfway
		return ErrInterrupted
	}
	be.EmbeddingBackward(m.wte.passGrad, a.dresid, a.tokens)
	m.gradsDone(m.arena.outerGrad, m.wte)
	return nil
}

// weightGrad accumulates the gradient of linear p given its output gradient
// dout: through z when compressed, else through input(), which rebuilds the
// layer input on demand (it is not kept in a lean engine).
func (m *Model) weightGrad(la *layerActs, li linear, p *Param, dout *gpu.Tensor, input func() *gpu.Tensor) {
	if gi := m.plan.groupOf[li]; gi >= 0 {
		m.be.Gemm(p.passGrad, dout, la.z[gi], true, false, 1, 1)
		return
	}
	m.be.Gemm(p.passGrad, dout, input(), true, false, 1, 1)
}

// lazy returns a func computing f once on first call.
func lazy(f func() *gpu.Tensor) func() *gpu.Tensor {
	var t *gpu.Tensor
	return func() *gpu.Tensor {
		if t == nil {
			t = f()
		}
		return t
	}
}

// blockBackward takes dresid = dL/d(output of block l) to dL/d(input of block l).
func (m *Model) blockBackward(l int) {
	be, a, b, la := m.be, m.acts, &m.blocks[l], &m.acts.layers[l]
	cfg := m.Cfg
	B, T, H, KV, D := a.B, a.T, cfg.Heads, cfg.KVHeads, cfg.HeadDim()
	eps, theta := float32(cfg.RMSEps), float32(cfg.RopeTheta)

	switch m.Opts.Recompute {
	case RecomputeBlock:
		if err := m.blockForward(l, nil, true); err != nil {
			panic(err) // shapes are ours; a failure here is a bug
		}
	case RecomputeMLP, RecomputeQKVMLP:
		be.RMSNorm(a.h, nil, la.xmid, b.mlpNorm.W, eps)
		m.linearFwd(la.gate, a.h, b.lin[linGate])
		m.linearFwd(la.up, a.h, b.lin[linUp])
	}

	// MLP: out = down(silu(gate) * up). down's weight gradient first: da
	// is written into the storage of silu(gate)*up (activations.go).
	m.weightGrad(la, linDown, b.lin[linDown], a.dresid, func() *gpu.Tensor {
		be.SwiGLU(a.a, la.gate, la.up)
		return a.a
	})
	be.Gemm(a.da, a.dresid, b.lin[linDown].W, false, false, 1, 0)
	// gate and up are dead after this: their gradients overwrite them.
	dgate, dup := la.gate, la.up
	be.SwiGLUBackward(dgate, dup, a.da, la.gate, la.up)
	be.Gemm(a.dh, dgate, b.lin[linGate].W, false, false, 1, 0)
	be.Gemm(a.dh, dup, b.lin[linUp].W, false, false, 1, 1)
	h2 := lazy(func() *gpu.Tensor {
		be.RMSNorm(a.h, nil, la.xmid, b.mlpNorm.W, eps)
		return a.h
	})
	m.weightGrad(la, linGate, b.lin[linGate], dgate, h2)
	m.weightGrad(la, linUp, b.lin[linUp], dup, h2)
	be.RMSNormBackward(a.dresid, b.mlpNorm.passGrad, a.dh, la.xmid, b.mlpNorm.W, la.rstd2)
	if m.stopped() {
		return // half a block is seconds on the CPU; the caller sees Stop too
	}

	// Attention: out = o(attention(rope(q(h)), rope(k(h)), v(h))).
	h1 := lazy(func() *gpu.Tensor {
		be.RMSNorm(a.h, nil, la.x, b.attnNorm.W, eps)
		return a.h
	})
	if m.Opts.Recompute == RecomputeQKVMLP {
		// The forward's kernels on the forward's inputs: the same bits.
		// The attention output and lse are kept, so attention is not rerun;
		// h1 stays in a.h for the weight gradients below (nothing between
		// writes it).
		m.linearFwd(la.q, h1(), b.lin[linQ])
		m.linearFwd(la.k, h1(), b.lin[linK])
		m.linearFwd(la.v, h1(), b.lin[linV])
		be.RoPE(la.q, T, H, D, theta, false)
		be.RoPE(la.k, T, KV, D, theta, false)
	}
	be.Gemm(a.datt, a.dresid, b.lin[linO].W, false, false, 1, 0)
	if m.plan.groupOf[linO] >= 0 {
		// A compressed o_proj's z = att P is formed here, from the attention
		// output that attention's backward keeps anyway, into scratch
		// (activations.go), not saved by the forward: the same G = dout^T z
		// with no z kept per layer.
		m.compress(l, la, la.att, linO)
	}
	m.weightGrad(la, linO, b.lin[linO], a.dresid, func() *gpu.Tensor { return la.att })
	be.AttentionBackward(a.dq, a.dk, a.dv, a.datt, la.q, la.k, la.v, la.att, la.lse, B, T, H, KV, D)
	be.RoPE(a.dq, T, H, D, theta, true)
	be.RoPE(a.dk, T, KV, D, theta, true)
	be.Gemm(a.dh, a.dq, b.lin[linQ].W, false, false, 1, 0)
	be.Gemm(a.dh, a.dk, b.lin[linK].W, false, false, 1, 1)
	be.Gemm(a.dh, a.dv, b.lin[linV].W, false, false, 1, 1)
	m.weightGrad(la, linQ, b.lin[linQ], a.dq, h1)
	m.weightGrad(la, linK, b.lin[linK], a.dk, h1)
	m.weightGrad(la, linV, b.lin[linV], a.dv, h1)
	be.RMSNormBackward(a.dresid, b.attnNorm.passGrad, a.dh, la.x, b.attnNorm.W, la.rstd1)
}
