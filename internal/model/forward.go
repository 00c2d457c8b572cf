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
		m.pass++
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
		if err := m.blockForward(l, next, m.forwardCompresses(train)); err != nil {
			return nil, err
		}
	}
	if m.score != nil {
		return m.sequenceHeadLoss(train, gradScale)
	}
	losses, stopped := m.lmHeadLoss(train, gradScale)
	if stopped {
		return nil, ErrInterrupted
	}
	return losses, nil
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
