package memreport

// The fit ranking (issue 19 item 5): which variants of a config fit a
// memory limit at the config's own batch, fastest first by the speed model
// (speed.go), and the --set that give each, so that a user with a given
// card knows what to run. Every variant is built as training builds it
// (the config's sources plus the variant's --set, validated), so its --set
// reproduce its prediction exactly, and one training would refuse is left
// out with the reason.

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/model"
)

// Option is one setting the fit ranking varies. Options is a table, so a
// new precision or mode is one more row, or one more value of a row.
type Option struct {
	Key string // as --set takes it
	// Values are the values to try for cfg, from the most conservative
	// (the most measured recipe) to the leanest: at equal predicted speed
	// the ranking prefers fewer changes, then earlier values. nil leaves
	// the setting as cfg has it. ranks are the CompAct ranks asked for.
	Values func(cfg config.Config, ranks []float64) []string
	// Own is cfg's effective value (train.weights auto resolved).
	Own func(cfg config.Config) string
	// Needs are the further --set that value needs in cfg, if any.
	Needs func(cfg config.Config, value string) []string
	// LastResort marks values whose cost in quality is not measured yet (a
	// compressed o_proj): a variant with one is ranked only where no
	// variant without any fits, however fast the model predicts it.
	LastResort func(value string) bool
}

// Options are the settings the fit ranking varies. The mode (full rank or
// CompAct) and the projection sharing stay as configured: changing the
// mode changes the recipe, and per-layer projections only cost more.
var Options = []Option{
	{Key: "compact.rank", Values: rankValues, Own: func(c config.Config) string { return formatRank(c.Compact.Rank) }},
	{Key: "train.recompute", Values: constValues(model.RecomputeNames...), Own: func(c config.Config) string { return c.Train.Recompute }},
	{Key: "train.weights", Values: constValues(config.WeightsMaster, config.WeightsBF16SR), Own: func(c config.Config) string {
		if c.MasterFree() {
			return config.WeightsBF16SR
		}
		return config.WeightsMaster
	}},
	// Every optimizer state the engine knows, in its order (fp32, bf16, ...).
	{Key: "train.optimizer_state", Values: func(config.Config, []float64) []string { return config.OptimizerStates },
		Own: func(c config.Config) string { return c.Train.OptimizerState }},
	// The gradient sums' storage, where there are sums (grad_accum > 1):
	// fp32, then bf16, at equal predicted speed, so bf16 only where fp32
	// does not fit.
	{Key: "train.grad_accum_state", Values: func(c config.Config, _ []float64) []string {
		if c.Train.GradAccum > 1 {
			return config.GradAccumStates
		}
		return nil
	}, Own: func(c config.Config) string { return c.Train.GradAccumState }},
	// A CompAct config's layers, and the same with o_proj compressed (which
	// needs o_proj_scale 1).
	{Key: "compact.layers", Values: layerValues, Own: func(c config.Config) string { return strings.Join(c.Compact.Layers, ",") },
		Needs: func(c config.Config, v string) []string {
			if slices.Contains(strings.Split(v, ","), "o") && c.Compact.OProjScale != 1 {
				return []string{"compact.o_proj_scale=1"}
			}
			return nil
		},
		LastResort: func(v string) bool { return slices.Contains(strings.Split(v, ","), "o") }},
	{Key: "train.fused_update", Values: constValues("false", "true"), Own: func(c config.Config) string { return strconv.FormatBool(c.Train.FusedUpdate) },
		Needs: func(c config.Config, v string) []string {
			if v == "true" && c.Train.GradClip != 0 {
				return []string{"train.grad_clip=0"} // the fused step cannot clip (config.Config.Validate)
			}
			return nil
		}},
}

// layerValues are a CompAct config's own compact.layers, then, where they
// leave o_proj full rank, the same with o_proj compressed.
func layerValues(cfg config.Config, _ []float64) []string {
	own := cfg.Compact.Layers
	if !cfg.Compact.Enabled || slices.Contains(own, "o") {
		return nil
	}
	var withO []string
	for _, l := range model.CompressibleLayers {
		if l == "o" || slices.Contains(own, l) {
			withO = append(withO, l)
		}
	}
	return []string{strings.Join(own, ","), strings.Join(withO, ",")}
}

func constValues(vs ...string) func(config.Config, []float64) []string {
	return func(config.Config, []float64) []string { return vs }
}

func formatRank(r float64) string { return strconv.FormatFloat(r, 'g', -1, 64) }

// rankValues are a CompAct config's own rank, then the ranks asked for, or
// without any 0.25 where the config's rank is a larger fraction: the rank
// SPEC section 9 holds to full rank's quality, and the one benchmarked.
// Ranks lower than those trade quality for speed, so they are tried only
// when asked for (--ranks).
func rankValues(cfg config.Config, ranks []float64) []string {
	if !cfg.Compact.Enabled {
		return nil
	}
	own := cfg.Compact.Rank
	if ranks == nil && own < 1 && own > 0.25 {
		ranks = []float64{0.25}
	}
	vs := []string{formatRank(own)}
	for _, r := range ranks {
		if s := formatRank(r); !slices.Contains(vs, s) {
			vs = append(vs, s)
		}
	}
	return vs
}

// FitRequest is what the fit ranking needs from its caller.
type FitRequest struct {
	// Config is the config as written: its file, COMPACT_* variables and
	// the user's --set, plus Base.
	Config config.Config
	// Base are --set that Config has beyond the user's (memreport --batch's
	// train.micro_batch): each variant's Set repeats them.
	Base []string
	// Ranks are the CompAct ranks to try besides the config's own (nil: see
	// rankValues).
	Ranks []float64
	// Build is the config with these --set added, loaded and validated as
	// training loads it.
	Build func(sets []string) (config.Config, error)
	// Peak is a config's predicted per-GPU peak in bytes.
	Peak func(cfg config.Config) (int64, error)
	// Limit is the bytes a run may use: the memory less the reserve.
	Limit int64
}

// Candidate is one variant the fit ranking tried.
type Candidate struct {
	Variant Variant `json:"variant"`
	// Set are the --set that turn the config as written into this variant.
	Set       []string `json:"set"`
	PeakBytes int64    `json:"predicted_peak_bytes"`
	Fits      bool     `json:"fits"`
	// Speed is the predicted tok/s over the config as written's.
	Speed float64 `json:"relative_speed"`
	// LastResort: the variant takes an Option value whose cost in quality
	// is not measured yet; it is ranked only where nothing else fits.
	LastResort bool          `json:"last_resort,omitempty"`
	Config     config.Config `json:"-"`

	options       []string // the options' part of Set
	changes, lean int      // options changed; sum of the changed values' indices
}

// LeftOut are variants the ranking did not predict, and why.
type LeftOut struct {
	Reason   string   `json:"reason"`
	Variants []string `json:"variants"`
}

// Split is the same global batch in smaller micro-batches.
type Split struct {
	MicroBatch int `json:"micro_batch"`
	GradAccum  int `json:"grad_accum"`
	// Best is the fastest variant that fits there; nil when nothing does
	// even at micro-batch 1, where Closest needs the least.
	Best    *Candidate `json:"best,omitempty"`
	Closest *Candidate `json:"closest,omitempty"`
}

// FitReport is the ranking of a config's variants against a limit.
type FitReport struct {
	LimitBytes int64  `json:"limit_bytes"`
	MicroBatch int    `json:"micro_batch"`
	GradAccum  int    `json:"grad_accum"`
	SpeedModel string `json:"speed_model"`
	// RerunWeight is what a recomputed forward FLOP costs against the
	// step's average, fitted to the measurements of CalibratedOn.
	RerunWeight  float64 `json:"rerun_weight"`
	CalibratedOn string  `json:"calibrated_on"`
	// Ranked are the variants that fit, fastest first: for each predicted
	// speed the one with the fewest changes (then the most conservative
	// values, then the smallest peak). Variants with a last-resort value
	// (Option.LastResort) are among them only where no other fits.
	Ranked []Candidate `json:"ranked"`
	Best   *Candidate  `json:"best,omitempty"`
	// Faster is, of the variants predicted faster than Best, the one that
	// needs the least memory: what a little more memory would buy.
	Faster *Candidate `json:"faster_not_fitting,omitempty"`
	// Closest is the variant with the smallest peak when nothing fits, and
	// Split the largest smaller micro-batch at the same global batch where
	// something does.
	Closest *Candidate `json:"closest,omitempty"`
	Split   *Split     `json:"split,omitempty"`
	LeftOut []LeftOut  `json:"left_out,omitempty"`
	// Tried counts the variants predicted at the config's batch (those
	// left out not included).
	Tried int `json:"variants_tried"`
}

// Fit ranks the variants of r.Config that fit r.Limit at its own micro-batch
// and accumulation, or, when none does, finds the closest and the largest
// smaller micro-batch (with accumulation raised to keep the global batch)
// where one fits.
func Fit(r FitRequest) (*FitReport, error) {
	w, from := rerunWeight(r.Config)
	rep := &FitReport{LimitBytes: r.Limit, MicroBatch: r.Config.Train.MicroBatch, GradAccum: max(r.Config.Train.GradAccum, 1),
		RerunWeight: w, CalibratedOn: from,
		SpeedModel: fmt.Sprintf("predicted tok/s over the config as written's: FLOPs per token (GEMMs, attention, CompAct's z and its decompression shared by the step's tokens), "+
			"recomputed forward FLOPs weighted %.2f as fitted to %s's measured lean/CompAct tok/s (H200, docs/benchmarks.md); precisions and the fused update count as free", w, from)}
	cands, left, err := r.candidates(nil)
	if err != nil {
		return nil, err
	}
	rep.Tried, rep.LeftOut = len(cands), left
	pool := preferred(cands)
	for _, c := range pool {
		if !c.Fits || (len(rep.Ranked) > 0 && sameSpeed(rep.Ranked[len(rep.Ranked)-1], c)) {
			continue
		}
		rep.Ranked = append(rep.Ranked, c)
	}
	if len(rep.Ranked) > 0 {
		rep.Best = &rep.Ranked[0]
		for _, c := range pool {
			if !c.Fits && c.Speed > rep.Best.Speed && !sameSpeed(c, *rep.Best) && (rep.Faster == nil || c.PeakBytes < rep.Faster.PeakBytes) {
				rep.Faster = &c
			}
		}
		return rep, nil
	}
	rep.Closest = leanest(cands)
	if rep.Split, err = r.split(); err != nil {
		return nil, err
	}
	return rep, nil
}

// candidates builds and predicts every combination of Options' values, with
// extra --set on top of the config's, best first.
func (r FitRequest) candidates(extra []string) ([]Candidate, []LeftOut, error) {
	type choice struct {
		set        []string // key=value and what it needs; nil for the config's own value
		index      int
		lastResort bool
	}
	// The values to try follow the batch tried (a split of the batch may
	// accumulate where the config does not); own values are the config's
	// as written.
	at := r.Config
	if len(extra) > 0 {
		if c, err := r.Build(mergeSets(r.Base, extra)); err == nil {
			at = c
		}
	}
	axes := make([][]choice, len(Options))
	for i, o := range Options {
		own := o.Own(r.Config)
		vals := o.Values(at, r.Ranks)
		if len(vals) == 0 {
			vals = []string{own}
		}
		for j, v := range vals {
			c := choice{index: j, lastResort: v != own && o.LastResort != nil && o.LastResort(v)}
			if v != own {
				c.set = append([]string{o.Key + "=" + v}, callNeeds(o, r.Config, v)...)
			}
			axes[i] = append(axes[i], c)
		}
	}
	var (
		out      []Candidate
		left     []LeftOut
		seen     = map[string]bool{}
		combo    = make([]int, len(axes))
		leaveOut = func(reason, what string) {
			for i := range left {
				if left[i].Reason == reason {
					left[i].Variants = append(left[i].Variants, what)
					return
				}
			}
			left = append(left, LeftOut{reason, []string{what}})
		}
	)
	for {
		var opts []string
		changes, lean, lastResort := 0, 0, false
		for i, j := range combo {
			if c := axes[i][j]; c.set != nil {
				opts = append(opts, c.set...)
				changes++
				lean += c.index
			}
			lastResort = lastResort || axes[i][j].lastResort
		}
		sets := mergeSets(r.Base, extra, opts)
		if key := strings.Join(sets, " "); !seen[key] {
			seen[key] = true
			c, why, err := r.candidate(sets)
			switch {
			case err != nil:
				return nil, nil, err
			case why != "":
				what := c.Variant.Name
				if what == "" {
					what = "--set " + strings.Join(opts, " --set ")
				}
				leaveOut(why, what)
			default:
				c.options, c.changes, c.lean, c.LastResort = opts, changes, lean, lastResort
				c.Variant.AsConfigured = len(opts) == 0 && len(extra) == 0
				out = append(out, c)
			}
		}
		// The next combination, the last option fastest.
		i := len(combo) - 1
		for ; i >= 0; i-- {
			if combo[i]++; combo[i] < len(axes[i]) {
				break
			}
			combo[i] = 0
		}
		if i < 0 {
			break
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return better(out[i], out[j]) })
	return out, left, nil
}

// preferred are the candidates without a last-resort value when one of them
// fits, else all of them.
func preferred(cs []Candidate) []Candidate {
	var plain []Candidate
	fits := false
	for _, c := range cs {
		if !c.LastResort {
			plain = append(plain, c)
			fits = fits || c.Fits
		}
	}
	if fits {
		return plain
	}
	return cs
}

func callNeeds(o Option, cfg config.Config, v string) []string {
	if o.Needs == nil {
		return nil
	}
	return o.Needs(cfg, v)
}

// candidate builds and predicts the variant of these --set, or says why it
// is left out: the combination does not validate (training would refuse
// it, naming the keys).
func (r FitRequest) candidate(sets []string) (Candidate, string, error) {
	vc, err := r.Build(sets)
	if err != nil {
		return Candidate{}, "does not validate: " + err.Error(), nil
	}
	v := AsConfigured(vc)
	v.AsConfigured, v.Role = false, ""
	c := Candidate{Variant: v, Set: sets, Config: vc}
	if c.PeakBytes, err = r.Peak(vc); err != nil {
		return Candidate{}, "", fmt.Errorf("variant %s: %w", v.Name, err)
	}
	c.Fits = c.PeakBytes <= r.Limit
	c.Speed = Speed(vc, r.Config)
	return c, "", nil
}

// better orders candidates: faster first; at the same speed fewer changes,
// then the more conservative values, then the smaller peak.
func better(a, b Candidate) bool {
	switch {
	case !sameSpeed(a, b):
		return a.Speed > b.Speed
	case a.changes != b.changes:
		return a.changes < b.changes
	case a.lean != b.lean:
		return a.lean < b.lean
	}
	return a.PeakBytes < b.PeakBytes
}

// sameSpeed: the model gives equal FLOPs to variants that differ only in
// precisions; the tolerance absorbs float rounding.
func sameSpeed(a, b Candidate) bool {
	return math.Abs(a.Speed-b.Speed) <= 1e-9*math.Max(a.Speed, b.Speed)
}

// leanest is the candidate with the smallest peak (nil for none).
func leanest(cs []Candidate) *Candidate {
	var best *Candidate
	for i := range cs {
		if best == nil || cs[i].PeakBytes < best.PeakBytes {
			best = &cs[i]
		}
	}
	return best
}

// split finds the largest micro-batch below the config's that divides it
// and at which something fits, keeping micro_batch x grad_accum, and there
// the fastest variant. Peaks fall with the micro-batch, so the leanest
// variant at micro-batch 1 (the options the split can run: accumulation
// rules out some) probes the divisors in a binary search.
func (r FitRequest) split() (*Split, error) {
	B, A := r.Config.Train.MicroBatch, max(r.Config.Train.GradAccum, 1)
	divs := divisorsBelow(B)
	if len(divs) == 0 {
		return nil, nil
	}
	at := func(d int) []string {
		return []string{fmt.Sprintf("train.micro_batch=%d", d), fmt.Sprintf("train.grad_accum=%d", A*(B/d))}
	}
	ones, _, err := r.candidates(at(1))
	if err != nil {
		return nil, err
	}
	probe := leanest(ones)
	if probe == nil || !probe.Fits {
		return &Split{MicroBatch: 1, GradAccum: A * B, Closest: probe}, nil
	}
	lo, hi := 0, len(divs)-1 // divs[hi] = 1 fits; find the first (largest) that does
	for lo < hi {
		mid := (lo + hi) / 2
		c, why, err := r.candidate(mergeSets(r.Base, at(divs[mid]), probe.options))
		if err != nil {
			return nil, err
		}
		if why == "" && c.Fits {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	cands := ones
	if d := divs[hi]; d != 1 {
		if cands, _, err = r.candidates(at(d)); err != nil {
			return nil, err
		}
	}
	s := &Split{MicroBatch: divs[hi], GradAccum: A * (B / divs[hi])}
	pool := preferred(cands)
	for i := range pool {
		if pool[i].Fits {
			s.Best = &pool[i]
			break
		}
	}
	return s, nil
}

// divisorsBelow are n's divisors below n, largest first.
func divisorsBelow(n int) []int {
	var ds []int
	for i := 1; i*i <= n; i++ {
		if n%i == 0 {
			ds = append(ds, i)
			if j := n / i; j != i && j != n {
				ds = append(ds, j)
			}
		}
	}
	ds = slices.DeleteFunc(ds, func(d int) bool { return d == n })
	slices.Sort(ds)
	slices.Reverse(ds)
	return ds
}

// mergeSets joins lists of key=value, a later value of a key replacing an
// earlier one in its place.
func mergeSets(lists ...[]string) []string {
	var out []string
	at := map[string]int{}
	for _, l := range lists {
		for _, s := range l {
			k, _, _ := strings.Cut(s, "=")
			if i, ok := at[k]; ok {
				out[i] = s
				continue
			}
			at[k] = len(out)
			out = append(out, s)
		}
	}
	return out
}
