package model

// CompAct's projections P are a pure function of (seed, layer, group,
// epoch), and the epoch changes only every compact.update_gap steps, yet one
// step reads each P at least twice (the forward's z = x P, the update's
// N P^T) and up to 2*grad_accum+1 times with block recompute. Where the
// whole set is small the model keeps every P of the current epoch and
// generates each once per epoch; where it is large it keeps one buffer and
// regenerates on every use.
//
// The cut is an absolute size, not a fraction: P is ~19% of a layer's
// weights at r=0.25 for every model size, while the cost of regenerating is
// launches (fixed per call, which dominate at 60m/130m, where the cache is
// 10-40 MB) against compute that is noise beside a 350m/1b step (there a
// cache would cost 0.1-0.45 GiB of the lean configuration's memory).

import (
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/projection"
)

// ProjectionCacheElements is the most elements of P the model caches across
// calls (64 MiB in bf16); a larger set is regenerated on every use.
const ProjectionCacheElements = 32 << 20

// projCache holds P for the projection groups of the model.
type projCache struct {
	buf    *gpu.Tensor // every (layer, group) P back to back when cached, else one group's
	cached bool
	slots  map[uint32]*projSlot // by stream id (o_proj's are far apart from the rest: a map)
}

// projSlot is where one (layer, group) P lives in a cache, and which epoch's
// it holds.
type projSlot struct {
	off    int    // element offset in buf
	epoch  uint32 // epoch whose P the slot holds
	filled bool   // the slot holds a P at all
}

// allocProjections allocates the P buffer: the whole cache when it fits
// ProjectionCacheElements, else room for the largest single P.
func (m *Model) allocProjections() error {
	maxP := m.MaxProjection()
	if maxP == 0 {
		return nil
	}
	c := &m.projs
	total := 0
	slots := map[uint32]*projSlot{}
	for l := range m.Cfg.Layers {
		for _, g := range m.plan.groups {
			slots[projection.StreamID(l, g.ID)] = &projSlot{off: total}
			total += g.size()
		}
	}
	if g := m.plan.head; g != nil { // the LM head's P: layer num_layers
		slots[projection.StreamID(m.Cfg.Layers, g.ID)] = &projSlot{off: total}
		total += g.size()
	}
	size := maxP
	if c.cached = total <= ProjectionCacheElements; c.cached {
		size, c.slots = total, slots
	}
	var err error
	c.buf, err = m.be.Alloc("projection", gpu.Projection, gpu.Low, size)
	return err
}

// ProjectionCached reports whether P is kept for a whole epoch.
func (m *Model) ProjectionCached() bool { return m.projs.cached }

// Projection returns P (n x Cols, Low, zero from column Rank) of group g in
// layer l for the current epoch. Cached, it is generated on the epoch's first call and stays valid
// until the epoch changes; uncached, it is regenerated into a shared buffer
// and valid until the next call.
func (m *Model) Projection(l int, g *Group) *gpu.Tensor {
	c := &m.projs
	if !c.cached {
		return m.FillProjection(c.buf, l, g)
	}
	s := c.slots[projection.StreamID(l, g.ID)]
	P := c.buf.Rows(s.off, s.off+g.size()).Reshape(g.Width, g.Cols)
	if !s.filled || s.epoch != m.epoch {
		m.be.Projection(P, m.Stream(l, g))
		s.filled, s.epoch = true, m.epoch
	}
	return P
}

// FillProjection generates P of group g in layer l into the front of buf
// (any precision) and returns that view.
func (m *Model) FillProjection(buf *gpu.Tensor, l int, g *Group) *gpu.Tensor {
	P := buf.Rows(0, g.size()).Reshape(g.Width, g.Cols)
	m.be.Projection(P, m.Stream(l, g))
	return P
}

// MaxProjection is the largest P (n x Cols) of any projection group (0
// without CompAct).
func (m *Model) MaxProjection() int {
	n := 0
	for _, g := range m.plan.groups {
		n = max(n, g.size())
	}
	if g := m.plan.head; g != nil {
		n = max(n, g.size())
	}
	return n
}
