package memreport

// The default report: the config as written and the few variants that
// answer a user's questions (what full rank costs, what CompAct saves, how
// lean it gets, what is the fastest variant that fits), instead of every
// variant of every option (Variants, memreport --all).

import (
	"slices"
	"strings"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/model"
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
func AsConfigured(cfg config.Config) Variant {
	v := Variant{Compact: cfg.Compact.Enabled, Share: cfg.Compact.Share, Recompute: cfg.Train.Recompute,
		Weights: config.WeightsMaster, OptimizerState: cfg.Train.OptimizerState, FusedUpdate: cfg.Train.FusedUpdate, AsConfigured: true, Role: RoleConfig}
	if v.Compact {
		v.Rank, v.OProj = cfg.Compact.Rank, slices.Contains(cfg.Compact.Layers, "o")
	}
	if cfg.BF16GradSums() {
		v.GradAccumState = config.StateBF16
	}
	if cfg.MasterFree() {
		v.Weights = config.WeightsBF16SR
	}
	return v.named()
}

// Defaults are the rows of the default report: the config as written,
// full rank without and with block recompute, CompAct at each rank, and
// the lean configuration (master-free bf16 weights, bf16 moments, fused
// update, block recompute) of full rank and of CompAct at 0.25 (or the
// middle rank). A variant equal to an earlier one joins its role instead.
func Defaults(cfg config.Config, ranks []float64) []Variant {
	out := []Variant{AsConfigured(cfg)}
	block := model.RecomputeNames[model.RecomputeBlock]
	lean := func(v Variant) Variant {
		v.Weights, v.OptimizerState, v.FusedUpdate, v.Recompute = config.WeightsBF16SR, config.StateBF16, true, block
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
