package memreport

import (
	"slices"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu/device"
	"github.com/compact-llm/compact/internal/train"
)

// small is a 4-layer model (CUDA layout), quick to predict, with overrides.
var small = []string{"model.vocab_size=4096", "model.hidden_size=256", "model.intermediate_size=688", "model.num_layers=4",
	"model.num_heads=4", "model.num_kv_heads=4", "train.seq_len=128", "model.max_seq_len=128", "data.tokenizer=byte"}

// fitRequest ranks the small model with these --set at limit bytes, each
// variant loaded as the CLI loads it.
func fitRequest(t *testing.T, limit int64, sets ...string) FitRequest {
	t.Helper()
	base := append(slices.Clone(small), sets...)
	cfg, err := config.Load("", base)
	if err != nil {
		t.Fatal(err)
	}
	return FitRequest{Config: cfg, Limit: limit,
		Build: func(s []string) (config.Config, error) { return config.Load("", append(slices.Clone(base), s...)) },
		Peak: func(c config.Config) (int64, error) {
			p, _, err := train.PredictRankMemory(c, c.Train.MicroBatch, c.Train.SeqLen, device.CUDA, 1)
			return p.PeakAll, err
		}}
}

// Issue 19 item 5: the best variant fits, every ranked one fits and is
// slower than the one before it, everything faster than the best is over
// the limit, and the --set of each reproduce its prediction.
func TestFitRanksFastestThatFits(t *testing.T) {
	for _, accum := range []string{"1", "4"} {
		r := fitRequest(t, 0, "train.micro_batch=32", "train.grad_accum="+accum, "compact.rank=0.5", "train.grad_clip=1")
		r.Limit = 1 << 62
		all, _, err := r.candidates(nil)
		if err != nil {
			t.Fatal(err)
		}
		// A limit between the leanest and the fastest variant.
		r.Limit = (leanest(all).PeakBytes + all[0].PeakBytes) / 2
		f, err := Fit(r)
		if err != nil {
			t.Fatal(err)
		}
		if f.Best == nil || f.Best.PeakBytes > r.Limit || f.Faster == nil {
			t.Fatalf("grad_accum %s: best %+v, faster %+v at limit %d", accum, f.Best, f.Faster, r.Limit)
		}
		for i, c := range f.Ranked {
			if !c.Fits || c.PeakBytes > r.Limit || (i > 0 && c.Speed >= f.Ranked[i-1].Speed) {
				t.Errorf("grad_accum %s: ranked %d %s: fits %v, peak %d, speed %g", accum, i, c.Variant.Name, c.Fits, c.PeakBytes, c.Speed)
			}
			vc, err := r.Build(c.Set)
			if err != nil {
				t.Fatal(err)
			}
			if p, _ := r.Peak(vc); p != c.PeakBytes || AsConfigured(vc).Name != c.Variant.Name {
				t.Errorf("%s: --set %v gives %s at %d bytes, ranked at %d", c.Variant.Name, c.Set, AsConfigured(vc).Name, p, c.PeakBytes)
			}
		}
		// A compressed o_proj is a last resort: where a variant without it
		// fits, none with it is ranked, however fast.
		for _, c := range all {
			if c.LastResort != c.Variant.OProj {
				t.Errorf("%s: last resort %v", c.Variant.Name, c.LastResort)
			}
			if !c.LastResort && c.Speed > f.Best.Speed && !sameSpeed(c, *f.Best) && c.PeakBytes <= r.Limit {
				t.Errorf("grad_accum %s: %s is faster than the best (%s) and fits", accum, c.Variant.Name, f.Best.Variant.Name)
			}
		}
		for _, c := range f.Ranked {
			if c.LastResort {
				t.Errorf("grad_accum %s: %s ranked where variants without o_proj compressed fit", accum, c.Variant.Name)
			}
		}
		// The config's rank 0.5 and 0.25, each under every policy, weights,
		// optimizer state (int8 included), fused update, layers (o_proj
		// compressed or not) and, with accumulation, gradient sums; the
		// fused update with clipping off, a compressed o_proj with
		// o_proj_scale 1.
		sums := 1
		if accum != "1" {
			sums = len(config.GradAccumStates)
		}
		fused, int8, oproj, bf16sums := 0, 0, 0, 0
		for _, c := range all {
			if c.Variant.OProj {
				oproj++
			}
			if c.Variant.GradAccumState == config.StateBF16 {
				bf16sums++
			}
			if c.Variant.FusedUpdate {
				fused++
				if !slices.Contains(c.Set, "train.grad_clip=0") {
					t.Errorf("%s: --set %v does not turn clipping off", c.Variant.Name, c.Set)
				}
			}
			if c.Variant.OptimizerState == config.StateInt8 {
				int8++
			}
		}
		if want := 2 * 4 * 2 * len(config.OptimizerStates) * 2 * 2 * sums; len(all) != want || fused != want/2 || int8 != want/len(config.OptimizerStates) ||
			oproj != want/2 || bf16sums != want/sums*(sums-1) || len(f.LeftOut) != 0 {
			t.Errorf("grad_accum %s: %d variants (want %d), %d fused, %d int8, %d o_proj, %d bf16 sums, left out %v", accum, len(all), want, fused, int8, oproj, bf16sums, f.LeftOut)
		}
	}
}

// At equal predicted speed the ranking keeps the config's own settings:
// with room for everything the config as written is the best.
func TestFitPrefersFewestChanges(t *testing.T) {
	r := fitRequest(t, 1<<62, "train.micro_batch=8", "compact.rank=0.25")
	f, err := Fit(r)
	if err != nil {
		t.Fatal(err)
	}
	if f.Best == nil || len(f.Best.Set) != 0 || !f.Best.Variant.AsConfigured || f.Best.Speed != 1 {
		t.Errorf("best with unlimited memory: %+v", f.Best)
	}
	if f.Tried != 4*2*len(config.OptimizerStates)*2*2 {
		t.Errorf("%d variants tried at rank 0.25 (no other rank to try)", f.Tried)
	}
}

// Nothing fits: the closest variant and by how much it misses, and the
// largest smaller micro-batch at the same global batch where something
// fits, with its --set.
func TestFitNothingFits(t *testing.T) {
	r := fitRequest(t, 0, "train.micro_batch=32", "train.grad_accum=2")
	at32, _, err := r.candidates(nil)
	if err != nil {
		t.Fatal(err)
	}
	r8 := fitRequest(t, 0, "train.micro_batch=8", "train.grad_accum=8")
	at8, _, err := r8.candidates(nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Limit = leanest(at8).PeakBytes // micro-batch 8 fits, 16 does not
	if leanest(at32).PeakBytes <= r.Limit {
		t.Fatal("the test's limit fits at micro-batch 32")
	}
	f, err := Fit(r)
	if err != nil {
		t.Fatal(err)
	}
	if f.Best != nil || f.Closest == nil || f.Closest.PeakBytes != leanest(at32).PeakBytes || f.Split == nil || f.Split.Best == nil {
		t.Fatalf("best %+v, closest %+v, split %+v", f.Best, f.Closest, f.Split)
	}
	s := f.Split
	if s.MicroBatch*s.GradAccum != 64 || s.MicroBatch < 8 || s.Best.PeakBytes > r.Limit || !slices.Contains(s.Best.Set, "train.micro_batch=8") {
		t.Errorf("split: micro-batch %d x %d, best %s at %d (limit %d), --set %v", s.MicroBatch, s.GradAccum, s.Best.Variant.Name, s.Best.PeakBytes, r.Limit, s.Best.Set)
	}
	r.Limit = 1
	if f, err = Fit(r); err != nil || f.Best != nil || f.Split == nil || f.Split.Best != nil || f.Split.MicroBatch != 1 || f.Split.GradAccum != 64 || f.Split.Closest == nil {
		t.Errorf("1 byte: %+v, %v", f, err)
	}
}

// A combination training would refuse is left out with its reason, not
// predicted: here an absolute rank wider than the layers.
func TestFitLeavesOutWhatDoesNotValidate(t *testing.T) {
	r := fitRequest(t, 1<<62, "train.micro_batch=8", "compact.rank=0.25")
	r.Ranks = []float64{600}
	f, err := Fit(r)
	if err != nil {
		t.Fatal(err)
	}
	n := 4 * 2 * len(config.OptimizerStates) * 2 * 2
	if f.Tried != n || len(f.LeftOut) != 1 || len(f.LeftOut[0].Variants) != n || !strings.Contains(f.LeftOut[0].Reason, "compact.rank") {
		t.Errorf("%d predicted, left out %+v", f.Tried, f.LeftOut)
	}
}

func TestMergeSetsAndDivisors(t *testing.T) {
	got := mergeSets([]string{"a=1", "b=2"}, []string{"c=3", "a=4"})
	if strings.Join(got, " ") != "a=4 b=2 c=3" {
		t.Errorf("mergeSets: %v", got)
	}
	if d := divisorsBelow(64); !slices.Equal(d, []int{32, 16, 8, 4, 2, 1}) {
		t.Errorf("divisors of 64: %v", d)
	}
	if d := divisorsBelow(1); len(d) != 0 {
		t.Errorf("divisors of 1: %v", d)
	}
	if d := divisorsBelow(36); !slices.Equal(d, []int{18, 12, 9, 6, 4, 3, 2, 1}) {
		t.Errorf("divisors of 36: %v", d)
	}
}

// Where only o_proj compressed fits, the ranking takes it (a last resort
// is still a resort): with bf16 gradient sums at the config's accumulation,
// and compact.o_proj_scale=1 among its --set when the config scales o_proj
// (a compressed o_proj takes alpha), which reproduce its prediction.
func TestFitCompressesOProjOnlyToFit(t *testing.T) {
	r := fitRequest(t, 1<<62, "train.micro_batch=8", "train.grad_accum=4", "compact.rank=0.25", "compact.o_proj_scale=0.5")
	all, _, err := r.candidates(nil)
	if err != nil {
		t.Fatal(err)
	}
	lean := leanest(all)
	if !lean.Variant.OProj || lean.Variant.GradAccumState != config.StateBF16 {
		t.Fatalf("the leanest variant is %s, want one with o_proj compressed and bf16 sums", lean.Variant.Name)
	}
	r.Limit = lean.PeakBytes
	f, err := Fit(r)
	if err != nil {
		t.Fatal(err)
	}
	b := f.Best
	if b == nil || !b.LastResort || !slices.Contains(b.Set, "compact.o_proj_scale=1") || !slices.Contains(b.Set, "train.grad_accum_state=bf16") {
		t.Fatalf("best at the leanest variant's peak: %+v", b)
	}
	vc, err := r.Build(b.Set)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := r.Peak(vc); p != b.PeakBytes || !slices.Contains(vc.Compact.Layers, "o") || AsConfigured(vc).Name != b.Variant.Name {
		t.Errorf("--set %v gives %s (layers %v) at %d bytes, ranked %s at %d", b.Set, AsConfigured(vc).Name, vc.Compact.Layers, p, b.Variant.Name, b.PeakBytes)
	}
}
