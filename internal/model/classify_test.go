package model

import (
	"fmt"
	"math"
	"testing"

	"github.com/compact-llm/compact/internal/gpu/cpu"
)

// classBatch labels one position per sequence (the last non-padding one, as
// the data code picks it); the second sequence is padded after position 3,
// the third has no label at all (a partial last batch).
func classBatch(cfg Config) batch {
	b := randomBatch(cfg, 3, 5, 4)
	for i := range b.targets {
		b.targets[i] = -1
	}
	b.targets[0*5+4] = 2
	b.targets[1*5+2] = 0
	return b
}

// TestClassifierGradientsFiniteDifference checks every gradient of a
// classifier (score head on selected rows, through the whole model) against
// float64 central differences.
func TestClassifierGradientsFiniteDifference(t *testing.T) {
	cfg := testConfig()
	b := classBatch(cfg)
	for _, ca := range []bool{false, true} {
		opts := Options{NumLabels: 3}
		if ca {
			opts.Compact = compactOn(true)
		}
		be := cpu.New64(2)
		m := newTestModel(t, be, cfg, opts)
		if m.Param("lm_head.weight") != nil || m.Param("score.weight") == nil {
			t.Fatal("a classifier must have score.weight and no lm_head.weight")
		}
		_, grads := lossAndGrads(t, m, b)
		// Compressed gradients are checked by the CompAct identity test.
		checkFiniteDifferences(t, m, b, grads, func(p *Param) bool { return ca && p.Compressed() }, fmt.Sprintf("compact %v", ca))
	}
}

// TestClassifierLossIsHeadOnLastHidden recomputes the loss by hand from the
// final hidden states of a causal forward and score.weight.
func TestClassifierLossIsHeadOnLastHidden(t *testing.T) {
	cfg := testConfig()
	b := classBatch(cfg)
	be := cpu.New64(1)
	m := newTestModel(t, be, cfg, Options{NumLabels: 3})
	loss := meanLoss(t, m, b)
	hid, _ := be.DownloadF64(m.acts.h)
	score, _ := be.DownloadF64(m.score.W)
	C := cfg.Hidden
	var want float64
	rows := map[int]int{4: 2, 5 + 2: 0}
	for row, y := range rows {
		lg := make([]float64, 3)
		mx := math.Inf(-1)
		for j := range lg {
			for c := 0; c < C; c++ {
				lg[j] += hid[row*C+c] * score[j*C+c]
			}
			mx = max(mx, lg[j])
		}
		var s float64
		for _, v := range lg {
			s += math.Exp(v - mx)
		}
		want += mx + math.Log(s) - lg[y]
	}
	want /= 2
	if math.Abs(loss-want) > 1e-12 {
		t.Fatalf("classifier loss %.15g, by hand %.15g", loss, want)
	}
	if p := m.Predictions(); len(p) != 3 {
		t.Fatalf("predictions %v, want one per sequence", p)
	}
}

func TestClassifierRejectsBadLabels(t *testing.T) {
	cfg := testConfig()
	m := newTestModel(t, cpu.New64(1), cfg, Options{NumLabels: 2})
	b := classBatch(cfg) // label 2 is outside num_labels 2
	if err := m.SetBatch(b.in, b.targets, b.B, b.T); err == nil {
		t.Error("label outside num_labels accepted")
	}
	b.targets[0], b.targets[1] = 1, 1
	b.targets[4] = -1
	if err := m.SetBatch(b.in, b.targets, b.B, b.T); err == nil {
		t.Error("two labelled positions in one sequence accepted")
	}
}
