package model

import "github.com/compact-llm/compact/internal/gpu"

// lmHeadLoss is the causal LM's head: the final norm, LM head and
// cross-entropy, chunk by chunk so that only chunk x V logits are ever
// live. It reports whether a stop was seen: then the head is not updated
// (its gradient is partial) and the caller abandons the step.
func (m *Model) lmHeadLoss(train bool, gradScale float32) (*gpu.Tensor, bool) {
	be, a := m.be, m.acts
	N := a.B * a.T
	be.RMSNorm(a.h, a.rstdF, a.final, m.normF.W, float32(m.Cfg.RMSEps))
	head := m.lmHead
	if train && head.Compressed() {
		// CompAct on the head (compact.head): its weight gradient is
		// logits^T z with z = h P (N x r), vocab x r instead of vocab x hidden.
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
				be.Gemm(head.passGrad, logits, a.zHead.Rows(lo, hi), true, false, 1, 1)
			} else {
				be.Gemm(head.passGrad, logits, hN, true, false, 1, 1)
			}
		}
	}
	if train && m.lmHead != m.wte {
		m.gradsDone(m.arena.outerGrad, m.lmHead) // a tied head waits for the embedding backward
	}
	return a.losses, false
}
