package memreport

// The default report: the config as written and the few variants that
// answer a user's questions (what full rank costs, what CompAct saves, how
// lean it gets, what is the fastest variant that fits), instead of every
// variant of every option (Variants, memreport --all).

import (
	"fmt"
	"slices"
	"strings"

	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/train"
)

// Roles of the default report's rows.
const (
	RoleConfig  = "the config as written"
	RoleFull    = "full rank"
	RoleCompAct = "CompAct"
	RoleLean    = "lean"
	RoleBestFit = "best that fits"
)

// AsConfigured describes cfg as written, its choices resolved (train.weights
// auto, ...), named as Variants names its variants.
func AsConfigured(cfg train.Config) Variant {
	v := Variant{Compact: cfg.Compact.Enabled, Share: cfg.Compact.Share, Recompute: cfg.Train.Recompute,
		Weights: train.WeightsMaster, OptimizerState: cfg.Train.OptimizerState, FusedUpdate: cfg.Train.FusedUpdate, AsConfigured: true, Role: RoleConfig}
	if v.Compact {
		v.Rank = cfg.Compact.Rank
	}
	if cfg.MasterFree() {
		v.Weights = train.WeightsBF16SR
	}
	return v.named()
}

// Defaults are the rows of the default report: the config as written,
// full rank without and with block recompute, CompAct at each rank, and
// the lean configuration (master-free bf16 weights, bf16 moments, fused
// update, block recompute) of full rank and of CompAct at 0.25 (or the
// middle rank). A variant equal to an earlier one joins its role instead.
func Defaults(cfg train.Config, ranks []float64) []Variant {
	out := []Variant{AsConfigured(cfg)}
	block := model.RecomputeNames[model.RecomputeBlock]
	lean := func(v Variant) Variant {
		v.Weights, v.OptimizerState, v.FusedUpdate, v.Recompute = train.WeightsBF16SR, train.StateBF16, true, block
		return v
	}
	leanRank := ranks[len(ranks)/2]
	if slices.Contains(ranks, 0.25) {
		leanRank = 0.25
	}
	cands := []Variant{
		{Recompute: model.RecomputeNames[model.RecomputeNone], Role: RoleFull},
		{Recompute: block, Role: RoleFull},
	}
	for _, r := range ranks {
		cands = append(cands, Variant{Compact: true, Rank: r, Share: true, Recompute: model.RecomputeNames[model.RecomputeNone], Role: RoleCompAct})
	}
	cands = append(cands, lean(Variant{Role: RoleLean + " " + RoleFull}), lean(Variant{Compact: true, Rank: leanRank, Share: true, Role: RoleLean + " " + RoleCompAct}))
	for _, v := range cands {
		out = Merge(out, v.named())
	}
	return out
}

// Merge appends v to vs, or adds v's role to the variant of the same name.
func Merge(vs []Variant, v Variant) []Variant {
	for i := range vs {
		if vs[i].Name == v.Name {
			if !strings.Contains(vs[i].Role, v.Role) {
				vs[i].Role += "; " + v.Role
			}
			return vs
		}
	}
	return append(vs, v)
}

// BestFit is the fastest variant of cfg's mode (full rank, or CompAct at its
// rank) that fits: the least recomputation first, and at each policy the
// config's own precisions, then master-free weights, bf16 moments, the
// fused update and 8-bit moments, which cost (almost) no compute. fits says whether a variant fits;
// ok is false when none does (v is then the leanest). The role carries the
// --set overrides that turn cfg into v.
func BestFit(cfg train.Config, fits func(Variant) (bool, error)) (v Variant, ok bool, err error) {
	own := AsConfigured(cfg)
	type prec struct {
		weights, state string
		fused          bool
	}
	precs := []prec{
		{own.Weights, own.OptimizerState, own.FusedUpdate},
		{train.WeightsBF16SR, own.OptimizerState, own.FusedUpdate},
		{train.WeightsBF16SR, train.StateBF16, own.FusedUpdate},
		{train.WeightsBF16SR, train.StateBF16, true},
		{train.WeightsBF16SR, train.StateInt8, true},
	}
	tried := map[string]bool{}
	for _, rc := range model.RecomputeNames {
		for _, p := range precs {
			v = own
			v.AsConfigured = false
			v.Recompute, v.Weights, v.OptimizerState, v.FusedUpdate = rc, p.weights, p.state, p.fused
			v = v.named()
			if tried[v.Name] {
				continue
			}
			tried[v.Name] = true
			if v.Name == own.Name {
				v.AsConfigured = true // exactly the config, its other keys included
			}
			if ok, err = fits(v); err != nil || ok {
				v.Role = RoleBestFit + overrides(cfg, own, v)
				return v, ok, err
			}
		}
	}
	v.Role = RoleBestFit + overrides(cfg, own, v)
	return v, false, nil
}

// overrides says which --set turn the config (own) into v.
func overrides(cfg train.Config, own, v Variant) string {
	var sets []string
	if v.Recompute != own.Recompute {
		sets = append(sets, "train.recompute="+v.Recompute)
	}
	if v.Weights != own.Weights {
		sets = append(sets, "train.weights="+v.Weights)
	}
	if v.OptimizerState != own.OptimizerState {
		sets = append(sets, "train.optimizer_state="+v.OptimizerState)
	}
	if v.FusedUpdate != own.FusedUpdate {
		sets = append(sets, fmt.Sprintf("train.fused_update=%v", v.FusedUpdate))
		if v.FusedUpdate && cfg.Train.GradClip != 0 {
			sets = append(sets, "train.grad_clip=0")
		}
	}
	if len(sets) == 0 {
		return ""
	}
	return ": --set " + strings.Join(sets, " --set ")
}
