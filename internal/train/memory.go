package train

import (
	"encoding/json"
	"path/filepath"
	"strings"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/device"
	"github.com/compact-llm/compact/internal/optim"
)

// Prediction is the memory a training step of one configuration needs.
type Prediction struct {
	PeakAt  [gpu.NumCategories]int64 // bytes by category at the peak
	PeakAll int64
	// Activations split by what they hold (block inputs, q/k/v, gate/up,
	// compressed z, ...), summing to PeakAt[Activations].
	Kinds map[string]int64
}

// PredictMemory builds the run's model, optimizer and activations on a
// gpu.Meter, so the prediction comes from the very code that allocates, and
// adds what the CUDA backend allocates on its own (cuBLASLt workspace and
// the kernels' scratch). Everything is allocated before the first step, so
// the sum is the peak.
func PredictMemory(cfg config.Config, B, T int, backend string) (Prediction, error) {
	return predictMemory(cfg, B, T, backend, optim.Shard{}, 1)
}

// PredictRankMemory is the per-GPU peak of a data-parallel job of world
// ranks, and the rank that reaches it. The ranks differ only in their share
// of the optimizer state, and only under ZeRO-1 (train.zero), so this is the
// largest share's peak. Collectives add nothing the engine allocates: NCCL
// keeps its own buffers (outside this prediction), the CPU's TCP comm goes
// through host memory.
func PredictRankMemory(cfg config.Config, B, T int, backend string, world int) (Prediction, int, error) {
	ranks := world
	if cfg.Shard(0, world).World <= 1 {
		ranks = 1 // every rank holds the whole state
	}
	var best Prediction
	rank := 0
	for r := range ranks {
		p, err := predictMemory(cfg, B, T, backend, cfg.Shard(r, world), world)
		if err != nil {
			return Prediction{}, 0, err
		}
		if r == 0 || p.PeakAll > best.PeakAll {
			best, rank = p, r
		}
	}
	return best, rank, nil
}

// predictMemory is PredictMemory for the rank holding shard of the
// optimizer state.
func predictMemory(cfg config.Config, B, T int, backend string, shard optim.Shard, world int) (Prediction, error) {
	fp := device.Footprint(backend)
	meter := gpu.NewMeter(fp.ElementBytes())
	m, err := newRankModel(meter.Backend(), cfg, shard, world)
	if err != nil {
		return Prediction{}, err
	}
	oc := cfg.OptimizerConfig()
	oc.Shard = shard
	if _, err := optim.New(m, oc); err != nil {
		return Prediction{}, err
	}
	if err := m.Prepare(B, T); err != nil {
		return Prediction{}, err
	}
	s := meter.Memory().Snapshot()
	p := Prediction{PeakAt: s.Current, PeakAll: s.Total, Kinds: map[string]int64{}}
	extra := fp.WorkspaceBytes(B, T, cfg.Model.Hidden, cfg.Model.Heads)
	p.PeakAt[gpu.Workspace] += extra
	p.PeakAll += extra
	for _, a := range meter.Allocs {
		if a.Cat == gpu.Activations {
			p.Kinds[activationKind(a.Name)] += a.Bytes
		}
	}
	return p, nil
}

// activationKind names what an activation tensor of model.Prepare holds.
// ActivationKinds lists activationKind's kinds in the order a block makes
// them: the order of memreport's columns, whatever the variants.
var ActivationKinds = []string{"block inputs", "residual after attention", "norm statistics", "q, k, v", "attention output",
	"gate, up", "compressed z", "loss", "scratch (norm out, activations, gradients)"}

func activationKind(name string) string {
	if strings.HasPrefix(name, "layers.") {
		if i := strings.Index(name[len("layers."):], "."); i >= 0 {
			name = name[len("layers.")+i+1:]
		}
	}
	switch {
	case name == "x" || name == "final":
		return "block inputs"
	case name == "xmid":
		return "residual after attention"
	case strings.HasPrefix(name, "rstd"):
		return "norm statistics"
	case name == "q" || name == "k" || name == "v":
		return "q, k, v"
	case name == "att" || name == "lse":
		return "attention output"
	case name == "gate" || name == "up":
		return "gate, up"
	case strings.HasPrefix(name, "z"):
		return "compressed z"
	case name == "losses":
		return "loss"
	}
	return "scratch (norm out, activations, gradients)"
}

// MemoryFile is memreport.json of a training run.
type MemoryFile struct {
	Device     string  `json:"device"`
	MicroBatch int     `json:"micro_batch"`
	SeqLen     int     `json:"seq_len"`
	CompAct    bool    `json:"compact"`
	Rank       float64 `json:"rank,omitempty"`
	Recompute  string  `json:"recompute"`
	// A data-parallel job's file is rank 0's: its share of the optimizer
	// state under ZeRO-1 (Zero 1), the whole state otherwise.
	World           int              `json:"world,omitempty"`
	Zero            int              `json:"zero,omitempty"`
	Predicted       map[string]int64 `json:"predicted_peak_bytes"`
	ActivationKinds map[string]int64 `json:"predicted_activation_bytes_by_kind"`
	Measured        map[string]int64 `json:"measured_peak_bytes,omitempty"`
	Note            string           `json:"note"`
}

func categoryMap(per [gpu.NumCategories]int64, total int64) map[string]int64 {
	m := gpu.ByName(per)
	m["total"] = total
	return m
}

func writeMemoryFile(dir string, mf MemoryFile) error {
	js, err := json.MarshalIndent(mf, "", "  ")
	if err != nil {
		return err
	}
	return checkpoint.ReplaceFile(filepath.Join(dir, "memreport.json"), append(js, '\n'))
}
