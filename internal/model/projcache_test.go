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
	m := newTestModel(t, be, testConfig(), Options{Compact: compactOn(true)})
	if !m.ProjectionCached() {
		t.Fatal("a tiny model's projections should be cached")
	}
	fresh, err := be.Alloc("fresh", gpu.Projection, gpu.Low, m.MaxProjection())
	if err != nil {
		t.Fatal(err)
	}
	for _, epoch := range []uint32{0, 1, 1, 0, 5} {
		m.SetEpoch(epoch)
		for l := range m.Cfg.Layers {
			for gi := range m.Groups() {
				g := &m.plan.groups[gi]
				got, _ := be.Download(m.Projection(l, g))
				want, _ := be.Download(m.FillProjection(fresh, l, g))
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("epoch %d layer %d group %d: cached P[%d] = %v, fresh %v", epoch, l, g.ID, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// The cache is the sum of every layer's P; without it, one P's room.
func TestProjectionBufferSize(t *testing.T) {
	be := gpu.NewMeter(2, 4)
	cfg := testConfig()
	m, err := New(be.Backend(), cfg, Options{Compact: compactOn(true)})
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, g := range m.Groups() {
		want += cfg.Layers * g.Width * g.Rank
	}
	if got := m.projs.buf.Len(); got != want {
		t.Fatalf("projection cache holds %d elements, want %d", got, want)
	}
}
