// Package memreport compares the memory of training variants (full rank,
// CompAct ranks, recomputation policies, lean precisions, fused updates):
// predicted on a metering backend by train.PredictMemory, the largest
// micro-batch that fits, and the peak measured on a device.
package memreport

import (
	"fmt"
	"slices"
	"strings"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/device"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/train"
)

// Variant is one configuration memreport compares: full rank or CompAct
// at a rank, shared or per-layer projections, and a recomputation policy.
type Variant struct {
	Name    string  `json:"name"`
	Compact bool    `json:"compact"`
	Rank    float64 `json:"rank,omitempty"`
	Share   bool    `json:"share"`
	// OProj: o_proj is compressed too (compact.layers with o).
	OProj     bool   `json:"o_proj,omitempty"`
	Recompute string `json:"recompute"`
	// Weights and OptimizerState are train.weights and
	// train.optimizer_state; empty keeps the config's.
	Weights        string `json:"weights,omitempty"`
	OptimizerState string `json:"optimizer_state,omitempty"`
	// FusedUpdate is train.fused_update, which runs with grad_clip 0.
	FusedUpdate bool `json:"fused_update,omitempty"`
	// GradAccumState is train.grad_accum_state where it acts (grad_accum
	// > 1); empty is fp32.
	GradAccumState string `json:"grad_accum_state,omitempty"`
	// AsConfigured marks the config as written: Apply changes nothing (the
	// fields above describe it).
	AsConfigured bool `json:"as_configured,omitempty"`
	// Role says why the default report shows the variant ("the config as
	// written", "full rank", ...); empty in --all's list.
	Role string `json:"role,omitempty"`
}

// name is the variant's name from its fields: full or rRANK (-perlayer,
// -oproj: o_proj compressed too), the lean precisions (-bf16_sr master-free
// weights, -bf16 or -int8 moments), -fused, -bf16sums (bf16 gradient sums),
// then +recompute.
func (v Variant) name() string {
	n := "full"
	if v.Compact {
		n = fmt.Sprintf("r%g", v.Rank)
		if !v.Share {
			n += "-perlayer"
		}
		if v.OProj {
			n += "-oproj"
		}
	}
	if v.Weights == config.WeightsBF16SR {
		n += "-" + config.WeightsBF16SR
	}
	if v.OptimizerState != "" && v.OptimizerState != config.StateFP32 {
		n += "-" + v.OptimizerState
	}
	if v.FusedUpdate {
		n += "-fused"
	}
	if v.GradAccumState == config.StateBF16 {
		n += "-bf16sums"
	}
	return n + "+" + v.Recompute
}

// named returns v with its name set from its fields.
func (v Variant) named() Variant {
	v.Name = v.name()
	return v
}

// Apply returns cfg changed to the variant.
func (v Variant) Apply(cfg config.Config) config.Config {
	if v.AsConfigured {
		return cfg
	}
	cfg.Compact.Enabled = v.Compact
	if v.Compact {
		cfg.Compact.Rank, cfg.Compact.Share = v.Rank, v.Share
		cfg.Compact.Layers = withOProj(cfg.Compact.Layers, v.OProj)
		if v.OProj {
			cfg.Compact.OProjScale = 1 // a compressed o_proj takes alpha (model.CompactConfig)
		}
	}
	cfg.Train.Recompute = v.Recompute
	// A variant without a weights suffix is the fp32-master engine.
	cfg.Train.Weights = config.WeightsMaster
	if v.Weights != "" {
		cfg.Train.Weights = v.Weights
	}
	cfg.Train.OptimizerState = config.StateFP32
	if v.OptimizerState != "" {
		cfg.Train.OptimizerState = v.OptimizerState
	}
	cfg.Train.GradAccumState = config.StateFP32
	if v.GradAccumState != "" {
		cfg.Train.GradAccumState = v.GradAccumState
	}
	cfg.Train.FusedUpdate = v.FusedUpdate
	if v.FusedUpdate {
		// The mode's requirement. The config's grad_accum stays: with it
		// the fused step keeps the gradient arena for the sums.
		cfg.Train.GradClip = 0
	}
	return cfg
}

// Variants lists full rank and CompAct at each rank (shared
// projections), CompAct at ranks[1] with per-layer projections, each with
// every recomputation policy, all with fp32 master weights and fp32 moments;
// then the lean variants of full rank and each rank: master-free bf16
// weights ("-bf16_sr") and master-free weights with bf16 moments
// ("-bf16_sr-bf16") or 8-bit moments ("-bf16_sr-int8"); last each of those
// four with the optimizer step fused into backward ("-fused",
// "-bf16_sr-fused", "-bf16_sr-bf16-fused", "-bf16_sr-int8-fused"); last the
// leanest of those, "-bf16_sr-int8-fused", with o_proj compressed
// ("rRANK-oproj-..."), bf16 gradient sums ("-bf16sums", which act only at
// grad_accum > 1: at 1 they predict their fp32 twin), and both. Names are
// chosen so that no variant's name is a prefix of another's. filter keeps
// names with one of its prefixes.
func Variants(ranks []float64, filter []string) []Variant {
	var out []Variant
	add := func(v Variant) {
		v = v.named()
		if len(filter) == 0 {
			out = append(out, v)
			return
		}
		for _, f := range filter {
			if strings.HasPrefix(v.Name, f) {
				out = append(out, v)
				return
			}
		}
	}
	// each adds full rank and CompAct at every rank with the given recompute
	// policy and precisions.
	each := func(v Variant) {
		add(v)
		for _, r := range ranks {
			v.Compact, v.Rank, v.Share = true, r, true
			add(v)
		}
	}
	for _, rc := range model.RecomputeNames {
		each(Variant{Recompute: rc})
		if len(ranks) > 1 {
			add(Variant{Compact: true, Rank: ranks[1], Recompute: rc})
		}
	}
	for _, rc := range model.RecomputeNames {
		for _, state := range []string{config.StateFP32, config.StateBF16, config.StateInt8} {
			each(Variant{Recompute: rc, Weights: config.WeightsBF16SR, OptimizerState: state})
		}
	}
	for _, rc := range model.RecomputeNames {
		for _, lean := range [][2]string{{config.WeightsMaster, config.StateFP32}, {config.WeightsBF16SR, config.StateFP32},
			{config.WeightsBF16SR, config.StateBF16}, {config.WeightsBF16SR, config.StateInt8}} {
			each(Variant{Recompute: rc, Weights: lean[0], OptimizerState: lean[1], FusedUpdate: true})
		}
	}
	for _, rc := range model.RecomputeNames {
		for _, sums := range []string{"", config.StateBF16} {
			v := Variant{Recompute: rc, Weights: config.WeightsBF16SR, OptimizerState: config.StateInt8, FusedUpdate: true, GradAccumState: sums}
			if sums != "" {
				each(v)
			}
			for _, r := range ranks {
				v.Compact, v.Rank, v.Share, v.OProj = true, r, true, true
				add(v)
			}
		}
	}
	return out
}

// withOProj is layers with o_proj among them or not, in
// model.CompressibleLayers' order.
func withOProj(layers []string, o bool) []string {
	var out []string
	for _, l := range model.CompressibleLayers {
		if (l == "o" && o) || (l != "o" && slices.Contains(layers, l)) {
			out = append(out, l)
		}
	}
	return out
}

// MaxMicroBatch is the largest micro-batch (up to limit) whose predicted
// per-GPU peak in a job of gpus ranks (train.PredictRankMemory) plus reserve
// fits in memory, or 0 when even 1 does not.
func MaxMicroBatch(cfg config.Config, T int, backend string, memory, reserve int64, limit, gpus int) (int, error) {
	fits := func(B int) (bool, error) {
		c := cfg
		c.Train.MicroBatch, c.Train.SeqLen = B, T
		if config.CheckActivationSize(c) != nil {
			return false, nil // beyond any memory, and beyond safe size arithmetic
		}
		p, _, err := train.PredictRankMemory(cfg, B, T, backend, gpus)
		if err != nil {
			return false, err
		}
		return p.PeakAll+reserve <= memory, nil
	}
	lo, hi := 0, limit // fits(lo) holds (0 trivially); find the largest
	for lo < hi {
		mid := (lo + hi + 1) / 2
		ok, err := fits(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo, nil
}

// Measurement is the memory of real training steps on a device.
type Measurement struct {
	PeakAt  [gpu.NumCategories]int64
	PeakAll int64
	// DriverUsed is the growth of the device's used memory (driver's view:
	// our allocations plus allocator rounding and the CUDA context), 0 on
	// the CPU.
	DriverUsed int64
}

// Measure runs `steps` training steps of cfg at micro-batch B (and the
// config's grad_accum, whose fused step keeps a gradient arena) on its
// device and reports the allocator's peak by category.
func Measure(cfg config.Config, B int, steps int) (Measurement, error) {
	cfg.Train.MicroBatch = B
	be, _, err := device.Open(cfg.Train.Device, cfg.Train.Threads)
	if err != nil {
		return Measurement{}, err
	}
	defer be.Close()
	var before int64
	type driver interface {
		MemGetInfo() (free, total int64, err error)
	}
	drv, hasDriver := be.(driver)
	if hasDriver {
		if free, total, err := drv.MemGetInfo(); err == nil {
			// Less what the backend already allocated at open (the GEMM
			// workspace), which the prediction counts too.
			before = total - free - be.Memory().Snapshot().Total
		}
	}
	s, err := train.NewStepper(be, cfg)
	if err != nil {
		return Measurement{}, err
	}
	defer s.Close()
	if err := s.Run(steps); err != nil {
		return Measurement{}, err
	}
	var out Measurement
	snap := be.Memory().Snapshot()
	out.PeakAt, out.PeakAll = snap.PeakAt, snap.PeakAll
	if hasDriver {
		if free, total, err := drv.MemGetInfo(); err == nil {
			out.DriverUsed = total - free - before
		}
	}
	return out, nil
}
