package train

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
)

// guardFor is the guard of the default config with log_every 10 and a
// 2000-step run (200 warmup steps).
func guardFor(t *testing.T, policy string) *healthGuard {
	t.Helper()
	c := config.Default()
	c.Train.LogEvery, c.Train.Steps, c.Train.OnInstability = 10, 2000, policy
	return newHealthGuard(c, newHealthState())
}

// healthyLoss is a falling training curve with batch noise: 10.9 at step 1
// down to about 2.5, plus Gaussian noise of sd 0.05.
func healthyLoss(step int, rng *rand.Rand) float64 {
	return 2.4 + 8.5*math.Exp(-float64(step)/120) + 0.05*rng.NormFloat64()
}

func TestHealthQuietOnAHealthyRun(t *testing.T) {
	g := guardFor(t, config.InstabilityWarn)
	rng := rand.New(rand.NewPCG(1, 2))
	for step := 10; step <= 2000; step += 10 {
		gn := 0.3 + 2*math.Exp(-float64(step)/50) + 0.02*rng.NormFloat64() + 0.0002*float64(step) // grows slowly late, as real runs do
		if es := g.observe(step, healthyLoss(step, rng), gn); len(es) > 0 {
			t.Fatalf("step %d: a healthy run was flagged: %s", step, es[0].Message)
		}
		if step%500 == 0 {
			if es := g.observeVal(step, 2.5+8*math.Exp(-float64(step)/120)); len(es) > 0 {
				t.Fatalf("step %d: a falling validation loss was flagged: %s", step, es[0].Message)
			}
		}
	}
	if es := g.atEnd(2000); len(es) > 0 {
		t.Fatalf("a healthy run ends flagged: %s", es[0].Message)
	}
}

// TestHealthFlagsASlowDivergence replays the shape of the runs that
// motivated the guard: the loss falls to 3.3 by step 250, then climbs back
// to 3.6 and stays there, finite throughout.
func TestHealthFlagsASlowDivergence(t *testing.T) {
	g := guardFor(t, config.InstabilityWarn)
	rng := rand.New(rand.NewPCG(3, 4))
	var got *checkpoint.HealthEvent
	for step := 10; step <= 1000 && got == nil; step += 10 {
		loss := 3.3 + 7.6*math.Exp(-float64(step)/60)
		if step > 250 {
			loss = 3.3 + 0.3*math.Min(1, float64(step-250)/200)
		}
		for _, e := range g.observe(step, loss+0.03*rng.NormFloat64(), 1) {
			if e.Kind == EventRise {
				got = &e
			}
		}
	}
	if got == nil {
		t.Fatal("a loss that rose 9% and stayed there for hundreds of steps was not flagged")
	}
	if !got.Instability || got.Step > 600 || got.Since < 200 || got.Since > 320 {
		t.Errorf("rise event %+v: want an instability reported by step 600 that began near step 250", *got)
	}
	for _, want := range []string{"rising", "lower train.lr", "warmup"} {
		if !strings.Contains(got.Message, want) {
			t.Errorf("message %q lacks %q", got.Message, want)
		}
	}
}

func TestHealthSpikeIsConfirmedByTheNextSample(t *testing.T) {
	g := guardFor(t, config.InstabilityWarn)
	step := 0
	feed := func(loss float64) []checkpoint.HealthEvent { step += 10; return g.observe(step, loss, 1) }
	for range 20 {
		feed(3)
	}
	es := feed(4.5) // one sample 50% up: reported, not acted on
	if len(es) != 1 || es[0].Kind != EventSpike || es[0].Instability {
		t.Fatalf("a lone spike: got %+v, want one spike event that is not an instability", es)
	}
	if es := feed(3); len(es) != 0 {
		t.Fatalf("a recovered loss: got %+v", es)
	}
	feed(4.5)
	es = feed(4.6)
	if e, ok := instability(es); !ok || e.Kind != EventSpike || e.Since != step-20 {
		t.Fatalf("a spike that persists: got %+v, want an instability since step %d, the last normal sample", es, step-20)
	}
}

func TestHealthGradNormRiseAfterWarmup(t *testing.T) {
	g := guardFor(t, config.InstabilityWarn)
	var got []checkpoint.HealthEvent
	for step := 10; step <= 1500; step += 10 {
		gn := 8.0 // large during warmup: not judged
		if step > 200 {
			gn = 0.4 * math.Max(1, float64(step-400)/50) // from step 400 up to 8x at step 1400
		}
		got = append(got, g.observe(step, 3, gn)...)
	}
	if len(got) == 0 || got[0].Kind != EventGradRise {
		t.Fatalf("got %+v, want a gradient-norm rise", got)
	}
	if got[0].Since < 200 || got[0].Since > 450 || got[0].Ref > 0.5 {
		t.Errorf("event %+v: want it measured from the post-warmup low 0.4 near step 400", got[0])
	}
}

func TestHealthValidationRise(t *testing.T) {
	g := guardFor(t, config.InstabilityWarn)
	if es := g.observeVal(500, 3.0); len(es) != 0 {
		t.Fatal(es)
	}
	if es := g.observeVal(1000, 3.05); len(es) != 0 { // within 3%
		t.Fatalf("a 1.7%% bump was flagged: %+v", es)
	}
	es := g.observeVal(1500, 3.2)
	if len(es) != 1 || es[0].Kind != EventValRise || es[0].Since != 500 {
		t.Fatalf("got %+v, want a validation rise since step 500", es)
	}
}

func TestHealthOffSeesNothing(t *testing.T) {
	g := guardFor(t, config.InstabilityOff)
	for step := 10; step <= 500; step += 10 {
		if es := g.observe(step, float64(step), float64(step)); len(es) != 0 {
			t.Fatalf("train.on_instability=off reported %+v", es)
		}
	}
}
