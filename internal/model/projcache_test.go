package model

import (
	"testing"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
)

// A cached P must always be the P of the current epoch: the same values a
// fresh generation gives, whichever epochs came before (including going
// back to an earlier one, as a resumed run's first step may).
func TestProjectionCacheFollowsTheEpoch(t *testing.T) {
	be := cpu.New(1)
	m := newTestModel(t, be, testConfig(), Options{Compact: compactHead()})
	if !m.ProjectionCached() {
		t.Fatal("a tiny model's projections should be cached")
	}
	fresh, err := be.Alloc("fresh", gpu.Projection, gpu.Low, m.MaxProjection())
	if err != nil {
		t.Fatal(err)
	}
	for _, epoch := range []uint32{0, 1, 1, 0, 5} {
		m.SetEpoch(epoch)
		check := func(l int, g *Group) {
			got, _ := be.Download(m.Projection(l, g))
			want, _ := be.Download(m.FillProjection(fresh, l, g))
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("epoch %d layer %d group %d: cached P[%d] = %v, fresh %v", epoch, l, g.ID, i, got[i], want[i])
				}
			}
		}
		for l := range m.Cfg.Layers {
			for gi := range m.Groups() {
				check(l, &m.plan.groups[gi])
			}
		}
		check(m.Cfg.Layers, m.plan.head) // the LM head's P (compact.head)
	}
}

// The cache is the sum of every layer's P at its storage width; without it,
// one P's room.
func TestProjectionBufferSize(t *testing.T) {
	be := gpu.NewMeter(2, 4)
	cfg := testConfig()
	m, err := New(be.Backend(), cfg, Options{Compact: compactHead()})
	if err != nil {
		t.Fatal(err)
	}
	want := cfg.Hidden * m.plan.head.Cols // the LM head's
	for _, g := range m.Groups() {
		want += cfg.Layers * g.Width * g.Cols // the rank padded: the meter pads like CUDA
	}
	if got := m.projs.buf.Len(); got != want {
		t.Fatalf("projection cache holds %d elements, want %d", got, want)
	}
}
