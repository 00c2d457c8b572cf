package model

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/projection"
)

// layerActs is what one block keeps for its backward pass. Which fields are
// per-layer and which point into shared scratch depends on the recompute
// policy: shared ones are rebuilt inside backward before use.
type layerActs struct {
	x, xmid      *gpu.Tensor   // block input (N,C) and residual after attention (N,C)
	rstd1, rstd2 *gpu.Tensor   // (N) Full
	q, k, v      *gpu.Tensor   // post-RoPE (N,C), (N,KV), (N,KV)
	att          *gpu.Tensor   // attention output = o_proj input (N,C)
	lse          *gpu.Tensor   // (B*H*T) Full
	gate, up     *gpu.Tensor   // (N,F)
	z            []*gpu.Tensor // z = input x P per projection group (N, r)
}

// activations holds everything sized by the micro-batch.
type activations struct {
	B, T   int
	layers []layerActs
	final  *gpu.Tensor // residual after the last block (N,C)

	tokens, targets *gpu.Tensor // (N) Int32

	// scratch, shared across layers
	h, a       *gpu.Tensor // norm output (N,C); silu(gate)*up (N,F)
	rstdF      *gpu.Tensor // (N) Full
	dresid, dh *gpu.Tensor // (N,C)
	datt       *gpu.Tensor // (N,C), the storage of dh
	dq, dk, dv *gpu.Tensor // (N,C), (N,KV), (N,KV)
	da         *gpu.Tensor // (N,F), the storage of a
	logits     *gpu.Tensor // (chunk, V) Workspace
	zHead      *gpu.Tensor // (N, r) final norm output x P of a compressed LM head
	losses     *gpu.Tensor // (N) Full
	lossSum    *gpu.Tensor // (1, 1) Full: ForwardDeferred's accumulator
	ones       *gpu.Tensor // (N, 1) Full, all ones, to sum losses with a GEMM
	owned      []*gpu.Tensor
	chunk      int

	// classification head (Options.NumLabels > 0)
	sel        *gpu.Tensor // (B, N) one-hot: row b selects sequence b's labelled position
	labels     *gpu.Tensor // (B) Int32, -1 for a sequence without a label
	hsel, dsel *gpu.Tensor // (B, C) selected hidden states and their gradient
	clogits    *gpu.Tensor // (B, NumLabels) Workspace
	closses    *gpu.Tensor // (B) Full
}

// lossChunk is the number of rows of logits live at once.
func (m *Model) lossChunk(N int) int {
	c := m.Opts.LossChunk
	if c <= 0 {
		// 64M logits (128 MiB in bf16): chunks large enough that the LM
		// head's GEMMs run at full rate and its fp32 weight gradient is
		// read and written few times.
		c = max(1, (64<<20)/m.Cfg.VocabSize)
	}
	return min(c, N)
}

// Prepare allocates the activations for micro-batches of B sequences of T
// tokens, reusing the current ones when the shape is unchanged.
func (m *Model) Prepare(B, T int) error {
	if m.acts != nil && m.acts.B == B && m.acts.T == T {
		return nil
	}
	if T > m.Cfg.MaxSeqLen {
		return fmt.Errorf("sequence length %d exceeds model.max_seq_len %d", T, m.Cfg.MaxSeqLen)
	}
	m.freeActivations()
	a := &activations{B: B, T: T}
	var err error
	alloc := func(name string, cat gpu.Category, p gpu.Precision, shape ...int) *gpu.Tensor {
		if err != nil {
			return nil
		}
		var t *gpu.Tensor
		t, err = m.be.Alloc(name, cat, p, shape...)
		if t != nil {
			a.owned = append(a.owned, t)
		}
		return t
	}
	N, C, F, KV := B*T, m.Cfg.Hidden, m.ffn(), m.Cfg.KVWidth()
	H, L := m.Cfg.Heads, m.Cfg.Layers
	act := func(name string, shape ...int) *gpu.Tensor { return alloc(name, gpu.Activations, gpu.Low, shape...) }
	actF := func(name string, shape ...int) *gpu.Tensor { return alloc(name, gpu.Activations, gpu.Full, shape...) }

	a.tokens = alloc("tokens", gpu.Other, gpu.Int32, N)
	a.targets = alloc("targets", gpu.Other, gpu.Int32, N)
	a.h, a.a = act("h", N, C), act("a", N, F)
	a.rstdF = actF("rstd_f", N)
	a.dresid, a.dh = act("dresid", N, C), act("dh", N, C)
	a.dq, a.dk, a.dv = act("dq", N, C), act("dk", N, KV), act("dv", N, KV)
	// Two scratch pairs are never live at once, so each pair shares one
	// buffer (N x (C+F) bf16 less, 246 MB at llama-1b, micro-batch 64):
	// the attention output's gradient is read only by the attention
	// backward, before dh of the q/k/v projections is written; silu(gate)*up
	// is read in backward only by down_proj's weight gradient, which runs
	// before its input gradient da is written (backward.go).
	a.datt, a.da = a.dh, a.a
	a.losses = actF("losses", N)
	a.lossSum = alloc("loss_sum", gpu.Other, gpu.Full, 1, 1)
	a.ones = alloc("ones", gpu.Other, gpu.Full, N, 1)
	if m.lmHead != nil {
		a.chunk = m.lossChunk(N)
		a.logits = alloc("logits", gpu.Workspace, gpu.Low, a.chunk, m.Cfg.VocabSize)
		if g := m.lmHead.Group; g != nil {
			a.zHead = act("z.head", N, g.Cols)
		}
	} else {
		// The selection is a one-hot GEMM rather than a gather so that it
		// and its transpose (the scatter of the gradient) run on any
		// backend in any precision; at B x N x C it costs nothing next to
		// the blocks.
		L := m.Opts.NumLabels
		a.sel = act("class.select", B, N)
		a.labels = alloc("class.labels", gpu.Other, gpu.Int32, B)
		a.hsel, a.dsel = act("class.hidden", B, C), act("class.dhidden", B, C)
		a.clogits = alloc("class.logits", gpu.Workspace, gpu.Low, B, L)
		a.closses = actF("class.losses", B)
	}

	// A compressed o_proj's z is formed in backward from the kept attention
	// output and read at once (backward.go), so every layer shares one: the
	// storage of silu(gate)*up and its gradient da, dead by then (the MLP's
	// backward is done) where it is large enough.
	zO := func(g Group) *gpu.Tensor {
		if a.a != nil && F >= g.Cols {
			return a.a.Reshape(N*F).Rows(0, N*g.Cols).Reshape(N, g.Cols)
		}
		return act("z.o", N, g.Cols)
	}
	zOf := func(prefix string, g Group) *gpu.Tensor {
		if g.ID == projection.GroupO {
			return zO(g)
		}
		return act(fmt.Sprintf("%sz%d", prefix, g.ID), N, g.Cols)
	}

	// Shared scratch for what the policy recomputes.
	var shared layerActs
	pol := m.Opts.Recompute
	if pol >= RecomputeMLP {
		shared.gate, shared.up = act("gate", N, F), act("up", N, F)
	}
	if pol == RecomputeQKVMLP {
		shared.q, shared.k, shared.v = act("q", N, C), act("k", N, KV), act("v", N, KV)
	}
	if pol == RecomputeBlock {
		shared.xmid = act("xmid", N, C)
		shared.rstd1, shared.rstd2 = actF("rstd1", N), actF("rstd2", N)
		shared.q, shared.k, shared.v = act("q", N, C), act("k", N, KV), act("v", N, KV)
		shared.att, shared.lse = act("att", N, C), actF("lse", B*H*T)
		for _, g := range m.plan.groups {
			shared.z = append(shared.z, zOf("", g))
		}
	}
	a.layers = make([]layerActs, L)
	for l := range a.layers {
		la := shared
		la.z = append([]*gpu.Tensor(nil), shared.z...)
		p := fmt.Sprintf("layers.%d.", l)
		la.x = act(p+"x", N, C)
		if pol < RecomputeBlock {
			la.xmid = act(p+"xmid", N, C)
			la.rstd1, la.rstd2 = actF(p+"rstd1", N), actF(p+"rstd2", N)
			if pol < RecomputeQKVMLP {
				la.q, la.k, la.v = act(p+"q", N, C), act(p+"k", N, KV), act(p+"v", N, KV)
			}
			la.att, la.lse = act(p+"att", N, C), actF(p+"lse", B*H*T)
			for _, g := range m.plan.groups {
				la.z = append(la.z, zOf(p, g))
			}
		}
		if pol == RecomputeNone {
			la.gate, la.up = act(p+"gate", N, F), act(p+"up", N, F)
		}
		a.layers[l] = la
	}
	a.final = act("final", N, C)
	if err != nil {
		for _, t := range a.owned {
			m.be.Free(t)
		}
		return fmt.Errorf("activations for micro-batch %dx%d: %w", B, T, err)
	}
	// Uploaded a chunk at a time: a host slice of N would make predicting a
	// huge micro-batch (memreport --batch) allocate B x T floats.
	ones := make([]float32, min(N, 1<<20))
	for i := range ones {
		ones[i] = 1
	}
	for off := 0; off < N; off += len(ones) {
		n := min(len(ones), N-off)
		if err := m.be.Upload(a.ones.Rows(off, off+n), ones[:n]); err != nil {
			return err
		}
	}
	m.acts = a
	return nil
}

func (m *Model) freeActivations() {
	if m.acts == nil {
		return
	}
	for _, t := range m.acts.owned {
		m.be.Free(t)
	}
	m.acts = nil
}
