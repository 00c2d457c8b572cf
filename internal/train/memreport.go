package train

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/model"
)

// ElementBytes returns the bytes per element of Low and Full tensors on a
// backend kind: the CPU keeps float32 everywhere, CUDA bf16 for Low.
func ElementBytes(backend string) (low, full int64) {
	if backend == "cuda" {
		return 2, 4
	}
	return 4, 4
}

// PredictMemory builds the run's model, optimizer and activations on a
// gpu.Meter and returns the bytes they would allocate, by category.
func PredictMemory(cfg Config, B, T int, backend string) (gpu.MemSnapshot, error) {
	low, full := ElementBytes(backend)
	meter := gpu.NewMeter(low, full)
	m, err := buildModel(meter, cfg)
	if err != nil {
		return gpu.MemSnapshot{}, err
	}
	if _, err := NewOptimizer(m, optimizerConfig(cfg)); err != nil {
		return gpu.MemSnapshot{}, err
	}
	if err := m.Prepare(B, T); err != nil {
		return gpu.MemSnapshot{}, err
	}
	return meter.Memory().Snapshot(), nil
}

func buildModel(be gpu.Backend, cfg Config) (*model.Model, error) {
	rc, err := model.ParseRecompute(cfg.Train.Recompute)
	if err != nil {
		return nil, err
	}
	return model.New(be, cfg.Model, model.Options{Compact: cfg.Compact, Recompute: rc, LossChunk: cfg.Train.LossChunk})
}

func optimizerConfig(cfg Config) OptimizerConfig {
	t := cfg.Train
	return OptimizerConfig{Beta1: t.Beta1, Beta2: t.Beta2, Eps: t.AdamEps, CompactEps: cfg.Compact.Eps,
		WeightDecay: t.WeightDecay, GradClip: t.GradClip, UpdateGap: cfg.Compact.UpdateGap}
}

// MemoryFile is memreport.json of a training run.
type MemoryFile struct {
	Device     string           `json:"device"`
	MicroBatch int              `json:"micro_batch"`
	SeqLen     int              `json:"seq_len"`
	CompAct    bool             `json:"compact"`
	Rank       float64          `json:"rank,omitempty"`
	Recompute  string           `json:"recompute"`
	Predicted  map[string]int64 `json:"predicted_peak_bytes"`
	Measured   map[string]int64 `json:"measured_peak_bytes,omitempty"`
	Note       string           `json:"note"`
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
	tmp := filepath.Join(dir, "memreport.json.tmp")
	if err := os.WriteFile(tmp, append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "memreport.json"))
}
