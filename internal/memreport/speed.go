package memreport

// The speed model of the fit ranking (fit.go): a variant's tok/s relative
// to another's, from the FLOPs one training token costs (SPEC section 9's
// arithmetic), with the recomputed forward weighted as measured. Precisions
// (master-free weights, bf16 moments) and the fused update move bytes, not
// FLOPs, and the benchmarks found them within noise (docs/perf-notes.md
// section 5), so they count as free here.

import (
	"math"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/model"
)

// work is what one training token of a configuration costs, in FLOPs.
type work struct {
	step   float64 // forward + backward: GEMMs (CompAct's z and r-space weight gradients included) and attention
	update float64 // the optimizer's CompAct decompression N P^T, once a step, shared by the step's tokens
	rerun  float64 // the forward work the recompute policy repeats inside backward
}

// linearShape is one linear layer: out x in, and the rank of its
// projection group (0: full rank).
type linearShape struct{ out, in, rank int }

// flops counts cfg's work per token. Ranks are logical (the engine pads
// r-space GEMMs to a multiple of 8; a fraction of a percent).
func flops(cfg config.Config) work {
	m := cfg.Model
	C, F, kv, T := m.Hidden, m.Intermediate, m.KVWidth(), float64(cfg.Train.SeqLen)
	cc := cfg.Compact
	rankOf := func(name string, n int) int {
		if !cc.Enabled || !contains(cc.Layers, name) {
			return 0
		}
		return resolveRank(cc.Rank, n)
	}
	lin := map[string]linearShape{
		"q": {C, C, rankOf("q", C)}, "k": {kv, C, rankOf("k", C)}, "v": {kv, C, rankOf("v", C)}, "o": {C, C, rankOf("o", C)},
		"gate": {F, C, rankOf("gate", C)}, "up": {F, C, rankOf("up", C)}, "down": {C, F, rankOf("down", F)},
	}
	var w work
	var perLayer float64
	for _, l := range lin {
		o, n := float64(l.out), float64(l.in)
		perLayer += 4 * o * n // forward and the input gradient
		if l.rank == 0 {
			perLayer += 2 * o * n
			continue
		}
		r := float64(l.rank)
		perLayer += 2 * o * r // G = do^T z
		w.update += 2 * o * n * r
	}
	// z = x P, once a step per projection group (in the forward, or under
	// block recompute only in backward's rerun; a compressed o_proj's
	// always in backward, from the kept attention output): with shared
	// projections q/k/v read one z and gate/up another.
	groups := [][]string{{"q"}, {"k"}, {"v"}, {"o"}, {"gate"}, {"up"}, {"down"}}
	if cc.Share {
		groups = [][]string{{"q", "k", "v"}, {"o"}, {"gate", "up"}, {"down"}}
	}
	for _, g := range groups {
		for _, name := range g {
			if l := lin[name]; l.rank > 0 {
				perLayer += 2 * float64(l.in) * float64(l.rank)
				break
			}
		}
	}
	attnFwd := 2 * float64(C) * T // causal: half of 4*T*C, as TrainFLOPsPerToken counts it
	perLayer += 3 * attnFwd
	L := float64(m.Layers)
	w.step = L * perLayer
	w.update *= L

	head, headIn := float64(m.VocabSize), float64(C)
	if cfg.Finetune.Task == config.TaskClassify {
		head = float64(max(cfg.Finetune.NumLabels, 1))
	}
	if cc.Enabled && cc.Head && !m.TieEmbeddings && cfg.Finetune.Task != config.TaskClassify {
		r := float64(resolveRank(cc.Rank, C))
		w.step += 4*head*headIn + 2*head*r + 2*headIn*r
		w.update += 2 * head * headIn * r
	} else {
		w.step += 6 * head * headIn
	}
	tokens := float64(cfg.Train.MicroBatch) * T * float64(max(cfg.Train.GradAccum, 1))
	w.update /= tokens

	fwd := func(names ...string) (f float64) {
		for _, n := range names {
			f += 2 * float64(lin[n].out) * float64(lin[n].in)
		}
		return f
	}
	rc, _ := model.ParseRecompute(cfg.Train.Recompute) // validated by config.Load
	switch rc {
	case model.RecomputeMLP:
		w.rerun = L * fwd("gate", "up")
	case model.RecomputeQKVMLP:
		w.rerun = L * fwd("q", "k", "v", "gate", "up")
	case model.RecomputeBlock:
		// The whole block forward; its z GEMMs are not repeated (the
		// training forward skips them under this policy).
		w.rerun = L * (fwd("q", "k", "v", "o", "gate", "up", "down") + attnFwd)
	}
	return w
}

// resolveRank is projection.Rank for a validated config: a fraction of the
// input width n (at least 1) or an absolute rank.
func resolveRank(rank float64, n int) int {
	if rank < 1 {
		return max(int(math.RoundToEven(rank*float64(n))), 1)
	}
	return int(rank)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// cost is the modelled time of one token in FLOP-equivalents: recomputed
// forward FLOPs weigh rerunWeight each (the rerun is large forward GEMMs,
// which run faster per FLOP than the step's average).
func (w work) cost(rerunWeight float64) float64 {
	return w.step + w.update + rerunWeight*w.rerun
}

// Calibration is one same-lease measurement the speed model is fitted to:
// a model shape and its tok/s at micro-batch 64 x 256, grad_accum 1.
type Calibration struct {
	Name                         string
	Hidden, Intermediate, Layers int
	Full, CompAct, Lean          float64 // tok/s: full rank (fp32 master, no recompute); CompAct r=0.25 (master-free, no recompute); lean CompAct r=0.25 (master-free, bf16 moments, fused update, block recompute)
}

// Calibrations are docs/benchmarks.md's H200 table of 2026-12-03 (session
// 4, one lease, vocabulary 50304, 8 heads of 64 at 60m ... 32 at 1b).
var Calibrations = []Calibration{
	{"llama-60m", 512, 1376, 8, 1016.7e3, 1057.6e3, 908.7e3},
	{"llama-130m", 768, 2048, 12, 470.5e3, 536.6e3, 444.3e3},
	{"llama-350m", 1024, 2736, 24, 185.6e3, 207.6e3, 169.8e3},
	{"llama-1b", 2048, 5461, 24, 61.1e3, 70.1e3, 56.1e3},
}

// config is the calibration's run in one of its three modes.
func (c Calibration) config(mode string) config.Config {
	cfg := config.Default()
	cfg.Model.Hidden, cfg.Model.Intermediate, cfg.Model.Layers = c.Hidden, c.Intermediate, c.Layers
	cfg.Model.Heads, cfg.Model.KVHeads = c.Hidden/64, c.Hidden/64
	cfg.Model.VocabSize = 50304
	cfg.Train.MicroBatch, cfg.Train.SeqLen, cfg.Train.GradAccum = 64, 256, 1
	cfg.Compact.Enabled, cfg.Compact.Rank, cfg.Compact.Share = mode != "full", 0.25, true
	cfg.Train.Recompute = model.RecomputeNames[model.RecomputeNone]
	if mode == "lean" {
		cfg.Train.Recompute = model.RecomputeNames[model.RecomputeBlock]
	}
	return cfg
}

// RerunWeight is what a recomputed forward FLOP costs against the step's
// average FLOP, fitted so that the model gives the measured lean/CompAct
// ratio exactly (lean differs from CompAct by the block recompute and by
// precisions counted as free).
func (c Calibration) RerunWeight() float64 {
	compact, lean := flops(c.config("compact")), flops(c.config("lean"))
	return (c.CompAct/c.Lean*compact.cost(0) - lean.cost(0)) / lean.rerun
}

// ModelledCompActOverFull is the model's CompAct/full tok/s ratio, to
// hold against the measured one (the model's check; nothing is fitted to it).
func (c Calibration) ModelledCompActOverFull() float64 {
	w := c.RerunWeight()
	return flops(c.config("full")).cost(w) / flops(c.config("compact")).cost(w)
}

// rerunWeight is the calibrated weight for cfg's size: interpolated in log
// parameters between the calibrated sizes, the nearest one's outside them
// (llama-7b takes llama-1b's).
func rerunWeight(cfg config.Config) (float64, string) {
	params := func(h, f, l int) float64 {
		return float64(l) * (4*float64(h)*float64(h) + 3*float64(h)*float64(f))
	}
	x := math.Log(params(cfg.Model.Hidden, cfg.Model.Intermediate, cfg.Model.Layers))
	cs := Calibrations
	first, last := cs[0], cs[len(cs)-1]
	if x <= math.Log(params(first.Hidden, first.Intermediate, first.Layers)) {
		return first.RerunWeight(), first.Name
	}
	for i := 1; i < len(cs); i++ {
		hi := math.Log(params(cs[i].Hidden, cs[i].Intermediate, cs[i].Layers))
		if x <= hi {
			lo := math.Log(params(cs[i-1].Hidden, cs[i-1].Intermediate, cs[i-1].Layers))
			t := (x - lo) / (hi - lo)
			w := (1-t)*cs[i-1].RerunWeight() + t*cs[i].RerunWeight()
			if t > 0.999 {
				return w, cs[i].Name
			}
			return w, cs[i-1].Name + " and " + cs[i].Name
		}
	}
	return last.RerunWeight(), last.Name
}

// Speed predicts v's tok/s over ref's (both configs of one model).
func Speed(v, ref config.Config) float64 {
	w, _ := rerunWeight(ref)
	return flops(ref).cost(w) / flops(v).cost(w)
}
