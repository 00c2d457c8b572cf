package model

import (
	"testing"

	"github.com/compact-llm/compact/internal/gpu"
)

// rankConfig has an MLP width that needs no padding, so that padding to 8
// pads only CompAct's rank (an absolute 5 in every group, the head's too).
func rankConfig() (Config, CompactConfig) {
	cfg := Config{VocabSize: 11, Hidden: 16, Intermediate: 24, Layers: 2, Heads: 2, KVHeads: 1,
		MaxSeqLen: 8, RopeTheta: 10000, RMSEps: 1e-6, InitStd: 0.3}
	cc := compactHead()
	cc.Rank = 5
	return cfg, cc
}

// Storing the rank padded to 8 must not change the model: same loss, same
// compressed gradients at the logical (rows, rank) shape, and exact zeros
// in the padding of every r-space tensor, shared or not, with the LM head
// compressed, under each recompute policy.
func TestPaddedRankIsInvisible(t *testing.T) {
	cfg, cc := rankConfig()
	unshared := cc
	unshared.Share = false
	for _, opts := range []Options{{Compact: cc}, {Compact: unshared, Recompute: RecomputeBlock},
		{Compact: cc, Recompute: RecomputeQKVMLP}, {Compact: unshared, Recompute: RecomputeMLP}} {
		m := checkPaddingInvisible(t, cfg, opts)
		for _, g := range append(m.Groups(), *m.plan.head) {
			if g.Rank != 5 || g.Cols != 8 {
				t.Fatalf("group %d: rank %d stored in %d columns, want 5 in 8", g.ID, g.Rank, g.Cols)
			}
		}
		if got := m.Param("model.layers.0.mlp.down_proj.weight").W.Shape; got[1] != 24 {
			t.Fatalf("down_proj is %v in the engine: the MLP width should need no padding", got)
		}
		var compressed int
		for _, p := range m.Params {
			if !p.Compressed() {
				continue
			}
			compressed++
			if want := []int{p.HFShape()[0], 5}; !sameShape(p.LogicalShape(p.Grad), want) {
				t.Errorf("%s: gradient leaves the engine as %v, want %v", p.Name, p.LogicalShape(p.Grad), want)
			}
			checkZeroPadding(t, m, p.Name+" gradient", p.Grad, 5)
		}
		if compressed == 0 {
			t.Fatal("no compressed params")
		}
		a := m.acts
		for l := range a.layers {
			for gi, z := range a.layers[l].z {
				checkZeroPadding(t, m, "z", z, m.plan.groups[gi].Rank)
			}
		}
		checkZeroPadding(t, m, "z.head", a.zHead, 5)
	}
}

// checkZeroPadding fails unless columns r.. of the 2-D x are exactly 0.
func checkZeroPadding(t *testing.T, m *Model, what string, x *gpu.Tensor, r int) {
	t.Helper()
	v, err := m.be.DownloadF64(x)
	if err != nil {
		t.Fatal(err)
	}
	cols := x.Shape[1]
	for i := range x.Shape[0] {
		for j := r; j < cols; j++ {
			if v[i*cols+j] != 0 {
				t.Fatalf("%s: padding [%d,%d] = %v, want 0", what, i, j, v[i*cols+j])
			}
		}
	}
}

// The rank is padded only where that keeps the storage narrower than the
// projection's input; the rule is what every r-space shape follows.
func TestPadRank(t *testing.T) {
	for _, c := range []struct{ r, n, pad, want int }{
		{684, 2736, 8, 688}, {1365, 5464, 8, 1368}, {5, 16, 8, 8}, {8, 16, 8, 8},
		{4, 8, 8, 4}, {6, 8, 8, 6}, {5, 16, 1, 5}, {5, 16, 0, 5},
	} {
		if got := padRank(c.r, c.n, c.pad); got != c.want {
			t.Errorf("padRank(%d, %d, %d) = %d, want %d", c.r, c.n, c.pad, got, c.want)
		}
	}
}

// An r-space tensor's logical shape is (rows, rank); the weight keeps its
// own rule (the MLP width cut back), even when the padded rank and the
// padded MLP width could be mistaken for each other.
func TestLogicalShapeOfRSpaceTensors(t *testing.T) {
	cfg := testConfig() // intermediate 12: padded to 16; down's rank 6 stored in 8
	m, err := New(gpu.NewMeter(2, 4).Backend(), cfg, Options{Compact: compactOn(true), PadIntermediate: 8})
	if err != nil {
		t.Fatal(err)
	}
	gate, down := m.Param("model.layers.0.mlp.gate_proj.weight"), m.Param("model.layers.0.mlp.down_proj.weight")
	for _, c := range []struct {
		p           *Param
		shape, want []int
	}{
		{down, []int{8, 16}, []int{8, 12}},
		{down, down.Grad.Shape, []int{8, 6}},
		{gate, gate.Grad.Shape, []int{12, 4}}, // rank 4 of width 8: unpadded
		{gate, []int{16, 8}, []int{12, 8}},
	} {
		if got := c.p.logical(c.shape); !sameShape(got, c.want) {
			t.Errorf("%s: logical(%v) = %v, want %v", c.p.Name, c.shape, got, c.want)
		}
	}
	if !sameShape(down.Grad.Shape, []int{8, 8}) {
		t.Errorf("down_proj's gradient is %v in the engine, want [8 8]", down.Grad.Shape)
	}
}
