package model

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
)

// SetBatch uploads one micro-batch: inputs and targets are B*T token ids,
// row-major (B, T); a target < 0 is ignored by the loss.
func (m *Model) SetBatch(inputs, targets []int32, B, T int) error {
	if err := m.Prepare(B, T); err != nil {
		return err
	}
	N := B * T
	if len(inputs) != N || (targets != nil && len(targets) != N) {
		return fmt.Errorf("batch has %d inputs and %d targets, want %d", len(inputs), len(targets), N)
	}
	for i, id := range inputs {
		if id < 0 || int(id) >= m.Cfg.VocabSize {
			return fmt.Errorf("input token %d at position %d is outside the vocabulary of %d", id, i, m.Cfg.VocabSize)
		}
	}
	if m.score != nil {
		if err := m.be.UploadInt32(m.acts.tokens, inputs); err != nil {
			return err
		}
		return m.setLabels(targets, B, T)
	}
	for i, id := range targets {
		if int(id) >= m.Cfg.VocabSize {
			return fmt.Errorf("target token %d at position %d is outside the vocabulary of %d", id, i, m.Cfg.VocabSize)
		}
	}
	if err := m.be.UploadInt32(m.acts.tokens, inputs); err != nil {
		return err
	}
	if targets == nil {
		targets = make([]int32, N)
		for i := range targets {
			targets[i] = -1
		}
	}
	return m.be.UploadInt32(m.acts.targets, targets)
}

// linearFwd computes out = in W^T.
func (m *Model) linearFwd(out, in *gpu.Tensor, p *Param) {
	m.be.Gemm(out, in, p.W, false, true, 1, 0)
}

// compress saves z = in P for every projection group whose users read in.
func (m *Model) compress(l int, la *layerActs, in *gpu.Tensor, users ...linear) {
	for gi := range m.plan.groups {
		g := &m.plan.groups[gi]
		if !readsFrom(g, users) {
			continue
		}
		m.be.Gemm(la.z[gi], in, m.Projection(l, g), false, false, 1, 0)
	}
}

func readsFrom(g *Group, users []linear) bool {
	for _, u := range g.Users {
		for _, v := range users {
			if u == v {
				return true
			}
		}
	}
	return false
}

// blockForward runs block l on la.x into next, saving what backward needs.
func (m *Model) blockForward(l int, next *gpu.Tensor) {
	be, a, b, la := m.be, m.acts, &m.blocks[l], &m.acts.layers[l]
	cfg := m.Cfg
	B, T, H, KV, D := a.B, a.T, cfg.Heads, cfg.KVHeads, cfg.HeadDim()
	eps, theta := float32(cfg.RMSEps), float32(cfg.RopeTheta)

	be.RMSNorm(a.h, la.rstd1, la.x, b.attnNorm.W, eps)
	m.linearFwd(la.q, a.h, b.lin[linQ])
	m.linearFwd(la.k, a.h, b.lin[linK])
	m.linearFwd(la.v, a.h, b.lin[linV])
	m.compress(l, la, a.h, linQ, linK, linV)
	be.RoPE(la.q, T, H, D, theta, false)
	be.RoPE(la.k, T, KV, D, theta, false)
	be.Attention(la.att, la.lse, la.q, la.k, la.v, B, T, H, KV, D)
	if err := be.Copy(la.xmid, la.x); err != nil {
		panic(err) // shapes are ours; a failure here is a bug
	}
	be.Gemm(la.xmid, la.att, b.lin[linO].W, false, true, 1, 1)

	be.RMSNorm(a.h, la.rstd2, la.xmid, b.mlpNorm.W, eps)
	m.linearFwd(la.gate, a.h, b.lin[linGate])
	m.linearFwd(la.up, a.h, b.lin[linUp])
	m.compress(l, la, a.h, linGate, linUp)
	be.SwiGLU(a.a, la.gate, la.up)
	m.compress(l, la, a.a, linDown)
	if next != nil {
		if err := be.Copy(next, la.xmid); err != nil {
			panic(err)
		}
		be.Gemm(next, a.a, b.lin[linDown].W, false, true, 1, 1)
	}
}

// Forward runs the model on the uploaded batch and returns the summed loss
// over valid targets. With train, the fused LM head also produces the
// gradient of the final hidden state (scaled by gradScale) and accumulates
// the LM head's weight gradient, ready for Backward.
func (m *Model) Forward(train bool, gradScale float32) (float64, error) {
	losses, err := m.forward(train, gradScale)
	if err != nil {
		return 0, err
	}
	return m.sumLosses(losses)
}

// ForwardDeferred is a training Forward that leaves the summed loss on the
// device, added to the accumulator that LossSum reads, so that nothing in a
// training step waits for the GPU until the loss is logged. The sum is a
// (1 x n) by (n x 1) GEMM against ones: deterministic, no new kernel.
func (m *Model) ForwardDeferred(gradScale float32) error {
	losses, err := m.forward(true, gradScale)
	if err != nil {
		return err
	}
	n := losses.Len()
	m.be.Gemm(m.acts.lossSum, losses.Reshape(1, n), m.acts.ones.Rows(0, n), false, false, 1, 1)
	return nil
}

// ZeroLoss clears the device loss accumulator.
func (m *Model) ZeroLoss() error {
	if m.acts == nil {
		return fmt.Errorf("loss accumulator before SetBatch")
	}
	m.be.Zero(m.acts.lossSum)
	return nil
}

// LossSum reads the loss accumulated by ForwardDeferred since ZeroLoss.
func (m *Model) LossSum() (float64, error) {
	if m.acts == nil {
		return 0, fmt.Errorf("loss accumulator before SetBatch")
	}
	v, err := m.be.DownloadF64(m.acts.lossSum)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

// forward runs the model and returns the per-row losses tensor.
func (m *Model) forward(train bool, gradScale float32) (*gpu.Tensor, error) {
	be, a := m.be, m.acts
	if a == nil {
		return nil, fmt.Errorf("forward before SetBatch")
	}
	if train {
		if err := m.checkHook(); err != nil {
			return nil, err
		}
		m.updating = false
	}
	be.Embedding(a.layers[0].x, m.wte.W, a.tokens)
	for l := range m.blocks {
		if train && m.stopped() {
			return nil, ErrInterrupted
		}
		next := a.final
		if l+1 < len(m.blocks) {
			next = a.layers[l+1].x
		}
		m.blockForward(l, next)
	}
	if m.score != nil {
		return m.classify(train, gradScale)
	}
	losses, stopped := m.classifier(train, gradScale)
	if stopped {
		return nil, ErrInterrupted
	}
	return losses, nil
}

// classifier is the final norm, LM head and cross-entropy, chunk by chunk so
// that only chunk x V logits are ever live. It reports whether a stop was
// seen: then the head is not updated (its gradient is partial) and the
// caller abandons the step.
func (m *Model) classifier(train bool, gradScale float32) (*gpu.Tensor, bool) {
	be, a := m.be, m.acts
	N := a.B * a.T
	be.RMSNorm(a.h, a.rstdF, a.final, m.normF.W, float32(m.Cfg.RMSEps))
	head := m.lmHead
	if train && head.Compressed() {
		// CompAct on the head: its weight gradient is logits^T z with
		// z = h P (N x r), vocab x r instead of vocab x hidden.
		be.Gemm(a.zHead, a.h, m.Projection(head.Layer, head.Group), false, false, 1, 0)
	}
	for lo := 0; lo < N; lo += a.chunk {
		hi := min(lo+a.chunk, N)
		logits := a.logits.Rows(0, hi-lo)
		hN := a.h.Rows(lo, hi)
		be.Gemm(logits, hN, m.lmHead.W, false, true, 1, 0)
		be.CrossEntropy(a.losses.Rows(lo, hi), logits, a.targets.Rows(lo, hi), train, gradScale)
		if train && m.stopped() {
			return a.losses, true
		}
		if train {
			be.Gemm(a.dh.Rows(lo, hi), logits, m.lmHead.W, false, false, 1, 0)
			if head.Compressed() {
				be.Gemm(head.Grad, logits, a.zHead.Rows(lo, hi), true, false, 1, 1)
			} else {
				be.Gemm(head.Grad, logits, hN, true, false, 1, 1)
			}
		}
	}
	if train && m.lmHead != m.wte {
		m.updateNow(m.arena.outerGrad, m.lmHead) // a tied head waits for the embedding backward
	}
	return a.losses, false
}

// sumLosses downloads per-row losses and adds them up on the host.
func (m *Model) sumLosses(losses *gpu.Tensor) (float64, error) {
	v, err := m.be.DownloadF64(losses)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, x := range v {
		sum += x
	}
	return sum, nil
}
