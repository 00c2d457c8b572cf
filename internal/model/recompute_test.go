package model

import (
	"math"
	"testing"

	"github.com/compact-llm/compact/internal/gpu/cpu"
)

// Under block recompute the training forward saves no z (the backward's
// rerun of each block writes it into the shared scratch before reading it),
// and no evaluation forward does under any policy: z stays as it was,
// poisoned with NaN here, while the loss and the gradients stay those of
// policy none, bit for bit (a read of a stale z would spread the NaN).
func TestForwardSkipsUselessCompress(t *testing.T) {
	cfg := testConfig()
	b := randomBatch(cfg, 2, 7, 3)
	lref, gref := lossAndGrads(t, newTestModel(t, cpu.New(2), cfg, Options{Compact: compactHead()}), b)
	for _, rc := range []Recompute{RecomputeNone, RecomputeBlock} {
		m := newTestModel(t, cpu.New(2), cfg, Options{Compact: compactHead(), Recompute: rc})
		if err := m.SetBatch(b.in, b.targets, b.B, b.T); err != nil {
			t.Fatal(err)
		}
		poison := func() {
			for _, la := range m.acts.layers {
				for _, z := range la.z {
					nan := make([]float32, z.Len())
					for i := range nan {
						nan[i] = float32(math.NaN())
					}
					if err := m.be.Upload(z, nan); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		untouched := func(what string) {
			for l, la := range m.acts.layers {
				for gi, z := range la.z {
					v, _ := m.be.Download(z)
					for i, x := range v {
						if !math.IsNaN(float64(x)) {
							t.Fatalf("%v %s: layer %d z%d[%d] written (%v)", rc, what, l, gi, i, x)
						}
					}
				}
			}
		}
		poison()
		if _, err := m.Forward(false, 0); err != nil {
			t.Fatal(err)
		}
		untouched("evaluation forward")
		if rc != RecomputeBlock {
			continue
		}
		m.ZeroGrads()
		loss, err := m.Forward(true, 1/float32(valid(b)))
		if err != nil {
			t.Fatal(err)
		}
		untouched("training forward")
		m.Backward()
		if loss/float64(valid(b)) != lref {
			t.Errorf("%v: loss %v, policy none gave %v", rc, loss/float64(valid(b)), lref)
		}
		for _, p := range m.Params {
			g, err := m.be.DownloadF64(p.Grad)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range crop(g, p.Grad.Shape, p.LogicalShape(p.Grad)) {
				if v != gref[p.Name][i] {
					t.Fatalf("%v: %s[%d] = %v, policy none gave %v", rc, p.Name, i, v, gref[p.Name][i])
				}
			}
		}
	}
}
