package model

import (
	"math"
	"testing"

	"github.com/compact-llm/compact/internal/gpu/cpu"
)

// Padding the MLP width inside the engine must not change the model: same
// loss, same gradients at the logical shapes, full rank and CompAct, and
// weights leave and re-enter at the HF shapes.
func TestPaddedIntermediateIsInvisible(t *testing.T) {
	cfg := testConfig() // intermediate 12
	for _, opts := range []Options{{}, {Compact: compactOn(true)}, {Compact: compactOn(false), Recompute: RecomputeBlock},
		{Compact: compactOn(true), Recompute: RecomputeQKVMLP}} {
		padded := checkPaddingInvisible(t, cfg, opts)
		if got := padded.Param("model.layers.0.mlp.down_proj.weight").W.Shape; got[1] != 16 {
			t.Fatalf("down_proj is %v in the engine, want 16 columns", got)
		}
	}
}

// checkPaddingInvisible builds cfg with opts unpadded and padded to 8
// (Options.PadIntermediate), gives both the same weights, and checks that
// they compute the same loss and the same gradients at the logical shapes,
// and that weights leave the padded engine at the HF shapes. It returns the
// padded model.
func checkPaddingInvisible(t *testing.T, cfg Config, opts Options) *Model {
	t.Helper()
	b := randomBatch(cfg, 2, 6, 8)
	opts.PadIntermediate = 1
	plain := newTestModel(t, cpu.New64(1), cfg, opts)
	po := opts
	po.PadIntermediate = 8
	padded, err := New(cpu.New64(1), cfg, po)
	if err != nil {
		t.Fatal(err)
	}
	weights, err := plain.WeightTensors()
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range weights {
		p := padded.Params[i]
		if !sameShape(w.Shape, p.HFShape()) {
			t.Fatalf("%s: HF shape %v vs %v", p.Name, p.HFShape(), w.Shape)
		}
		if err := padded.WriteParam(p, p.updatable(), w.Data); err != nil {
			t.Fatal(err)
		}
		// Both models take the same float32-rounded weights.
		if err := plain.WriteParam(plain.Params[i], plain.Params[i].updatable(), w.Data); err != nil {
			t.Fatal(err)
		}
	}
	lp, gp := lossAndGrads(t, plain, b)
	lq, _ := lossAndGrads(t, padded, b)
	if math.Abs(lp-lq) > 1e-12 {
		t.Errorf("%+v: loss %v padded vs %v", opts, lq, lp)
	}
	for _, p := range padded.Params {
		g, shape, err := padded.ReadParam(p, p.Grad)
		if err != nil {
			t.Fatal(err)
		}
		if len(g) != len(gp[p.Name]) {
			t.Fatalf("%s: gradient of shape %v has %d values, unpadded %d", p.Name, shape, len(g), len(gp[p.Name]))
		}
		g64 := make([]float64, len(g))
		for i, v := range g {
			g64[i] = float64(v)
		}
		if e := relErr(g64, gp[p.Name]); e > 1e-6 { // float32 download of float64 values
			t.Errorf("%+v: %s: padded gradient rel err %.3g", opts, p.Name, e)
		}
	}
	back, err := padded.WeightTensors()
	if err != nil {
		t.Fatal(err)
	}
	for i := range back {
		if !sameShape(back[i].Shape, weights[i].Shape) {
			t.Errorf("%s leaves the engine as %v, want %v", back[i].Name, back[i].Shape, weights[i].Shape)
		}
	}
	return padded
}
