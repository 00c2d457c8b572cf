package model

import (
	"math"
	"testing"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
)

// With bf16 gradient sums each micro-batch's gradient is formed in fp32,
// exactly as a model without accumulation forms it, and added into the
// sums as SR(sum + g) with the noise of (seed, StreamGradAccum + pass,
// step, gradient-layout element): the sums after three micro-batches are
// those of the rule applied by hand to the three fp32 gradients, bit for
// bit, for every param (compressed ones in r-space, o_proj's included, an
// untied and a tied head).
func TestBF16SumsRoundEachMicroBatch(t *testing.T) {
	const seed, step, passes = 9, 5, 3
	for _, tied := range []bool{false, true} {
		cfg := testConfig()
		cfg.TieEmbeddings = tied
		opts := Options{Compact: compactO(true), PadIntermediate: 8}
		ref := newTestModel(t, cpu.New(2), cfg, opts)
		opts.GradAccum, opts.GradAccumBF16, opts.GradAccumSeed = passes, true, seed
		m := newTestModel(t, cpu.New(2), cfg, opts)
		if g := m.Layout().Grads; g == nil || g.Prec != gpu.Low {
			t.Fatalf("bf16 sums: gradient arena %v, want a Low one", g)
		}
		for i, p := range ref.Params { // the same weights
			w, _ := ref.be.Download(p.W)
			if err := m.be.Upload(m.Params[i].W, w); err != nil {
				t.Fatal(err)
			}
		}
		want := map[string][]float32{}
		m.SetStep(step)
		m.ZeroGrads()
		for k := 1; k <= passes; k++ {
			b := randomBatch(cfg, 2, 6, uint64(k))
			for _, x := range []*Model{ref, m} {
				if x == ref {
					x.ZeroGrads()
				}
				if err := x.SetBatch(b.in, b.targets, b.B, b.T); err != nil {
					t.Fatal(err)
				}
				if _, err := x.Forward(true, 0.1); err != nil {
					t.Fatal(err)
				}
				x.Backward()
			}
			for _, p := range ref.Params {
				g, _ := ref.be.Download(p.Grad)
				s := want[p.Name]
				if s == nil {
					s = make([]float32, len(g))
				}
				rp := gpu.RoundParams{Seed: seed, Stream: gpu.StreamGradAccum + uint32(k), Step: step, Offset: int64(p.GradOff)}
				for i := range g {
					s[i] = gpu.BF16Stochastic(s[i]+g[i], gpu.RoundNoise(rp, int64(p.GradOff+i)))
				}
				want[p.Name] = s
			}
		}
		for _, p := range m.Params {
			got, _ := m.be.Download(p.Grad)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[p.Name][i]) {
					t.Fatalf("tied %v: %s element %d: sum %v, by hand %v", tied, p.Name, i, got[i], want[p.Name][i])
				}
			}
		}
		// The sums are bf16 values and the scratch is clear for the next step.
		for _, p := range m.Params {
			got, _ := m.be.Download(p.Grad)
			for i, v := range got {
				if !gpu.IsBF16(v) {
					t.Fatalf("%s element %d: %v is not a bf16 value", p.Name, i, v)
				}
			}
			pg, _ := m.be.Download(p.passGrad)
			for i, v := range pg {
				if v != 0 {
					t.Fatalf("%s: pass gradient element %d left at %v", p.Name, i, v)
				}
			}
		}
	}
}
