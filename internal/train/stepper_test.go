package train

import (
	"math"
	"testing"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/model"
)

// The Stepper that bench and memreport use takes, step for step, the
// update of a hand-driven training step at the peak rate on its batch:
// the same weights bit for bit and the same loss.
func TestStepperMatchesHandStep(t *testing.T) {
	cfg := leanConfig(true)
	cfg.Train.MicroBatch, cfg.Train.SeqLen, cfg.Train.GradAccum = 2, 8, 1
	cfg.Data.Tokenizer = "byte"
	cfg.Model.VocabSize = 320
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := NewStepper(cpu.New(2), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, o := buildPair(t, cfg)
	if err := m.Init(cfg.Train.Seed); err != nil {
		t.Fatal(err)
	}
	in, tg, _ := s.t.train.Next()
	B, T := cfg.Train.MicroBatch, cfg.Train.SeqLen
	var sum float64
	for i := 0; i < 3; i++ {
		sum, _ = trainStep(t, m, o, in, tg, B, T, cfg.PeakLR())
	}
	if err := s.Run(3); err != nil {
		t.Fatal(err)
	}
	weights := func(p *model.Param) *gpu.Tensor { return p.W }
	got, want := download(t, s.t.model, weights), download(t, m, weights)
	for name, w := range want {
		for i := range w {
			if math.Float64bits(got[name][i]) != math.Float64bits(w[i]) {
				t.Fatalf("%s[%d]: stepper %g, hand step %g", name, i, got[name][i], w[i])
			}
		}
	}
	loss, err := s.Loss()
	if err != nil {
		t.Fatal(err)
	}
	if want := sum / float64(B*T); loss != want {
		t.Errorf("stepper loss %g, hand step %g", loss, want)
	}
}
