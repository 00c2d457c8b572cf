package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/optim"
)

// In the leanest step (CompAct, master-free bf16 weights, bf16 moments, the
// update fused into backward) every recompute policy gives policy none's
// bits: each block's update runs after its whole backward, so no recomputed
// tensor can see an updated weight. Several steps, so that a policy reading
// a stale or overwritten tensor would drift.
func TestRecomputePoliciesAgreeInLeanStep(t *testing.T) {
	cfg := leanVariant(leanConfig(true))
	cfg.Train.GradClip, cfg.Train.GradAccum, cfg.Train.FusedUpdate = 0, 1, true
	cfg.Compact.UpdateGap = 2
	var refW [][]float32
	var refLoss []float64
	for _, rc := range model.RecomputeNames {
		c := cfg
		c.Train.Recompute = rc
		m, err := NewModel(cpu.New(2), c)
		if err != nil {
			t.Fatal(err)
		}
		if !m.Fused() {
			t.Fatal("want the fused engine")
		}
		if err := m.Init(3); err != nil {
			t.Fatal(err)
		}
		o, err := optim.New(m, c.OptimizerConfig())
		if err != nil {
			t.Fatal(err)
		}
		first := refW == nil
		rng := rand.New(rand.NewPCG(9, 10))
		B, T := 2, 8
		for step := 1; step <= 3; step++ {
			in, tg := randomBatch(rng, B*T, c.Model.VocabSize)
			loss, _ := trainStep(t, m, o, in, tg, B, T, 0.01)
			if first {
				refLoss = append(refLoss, loss)
			} else if loss != refLoss[step-1] {
				t.Fatalf("recompute %s step %d: loss %v, policy none gave %v", rc, step, loss, refLoss[step-1])
			}
		}
		for i, p := range m.Params {
			w := mustRead(t, m, p, p.W)
			if first {
				refW = append(refW, w)
				continue
			}
			for j := range w {
				if math.Float32bits(w[j]) != math.Float32bits(refW[i][j]) {
					t.Fatalf("recompute %s: %s element %d after 3 steps: %v, policy none gave %v", rc, p.Name, j, w[j], refW[i][j])
				}
			}
		}
		o.Free()
		m.Free()
	}
}
