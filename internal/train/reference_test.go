package train

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu/device"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/optim"
)

// TestExportHFReference writes what scripts/hf_reference.py needs to check
// compact against HuggingFace transformers: a checkpoint directory, one
// batch, our loss and gradients (full-rank, and CompAct's G with its P), and
// the losses of a few AdamW steps. It runs only when COMPACT_REFERENCE_OUT
// names an output directory (on the GPU machine, where torch is installed);
// COMPACT_REFERENCE_DEVICE picks the backend (default cpu).
func TestExportHFReference(t *testing.T) {
	out := os.Getenv("COMPACT_REFERENCE_OUT")
	if out == "" {
		t.Skip("COMPACT_REFERENCE_OUT not set: the HF reference export runs on the GPU machine (see scripts/hf_reference.py)")
	}
	dev := os.Getenv("COMPACT_REFERENCE_DEVICE")
	if dev == "" {
		dev = "cpu"
	}
	cfg := config.Default()
	cfg.Model = model.Config{VocabSize: 128, Hidden: 64, Intermediate: 176, Layers: 2, Heads: 4, KVHeads: 2,
		MaxSeqLen: 32, RopeTheta: 10000, RMSEps: 1e-6, InitStd: 0.05}
	cfg.Train.LR, cfg.Train.GradClip, cfg.Train.WeightDecay = 1e-3, 1.0, 0
	B, T := 2, 16
	rng := rand.New(rand.NewPCG(5, 5))
	in, tg := make([]int32, B*T), make([]int32, B*T)
	for i := range in {
		in[i], tg[i] = int32(rng.IntN(128)), int32(rng.IntN(128))
	}
	tg[5] = -100 // ignored, as HF's ignore_index
	for _, compact := range []bool{false, true} {
		cfg.Compact.Enabled = compact
		name := "full"
		if compact {
			name = "compact"
		}
		dir := filepath.Join(out, name)
		os.MkdirAll(dir, 0o755)
		be, _, err := device.Open(dev, 0)
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewModel(be, cfg)
		if err != nil {
			t.Fatal(err)
		}
		m.Init(7)
		write := func(name string, fill func(io.Writer) error) {
			var b bytes.Buffer
			if err := fill(&b); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		weights, _ := m.WeightTensors()
		write("model.safetensors", func(w io.Writer) error { return model.WriteSafetensors(w, weights) })
		write("config.json", func(w io.Writer) error { return model.WriteHFConfig(w, cfg.Model, -1) })
		opt, err := optim.New(m, cfg.OptimizerConfig())
		if err != nil {
			t.Fatal(err)
		}
		valid := B*T - 1
		var losses []float64
		var grads []model.NamedTensor
		for step := 0; step < 4; step++ {
			opt.BeginStep()
			m.ZeroGrads()
			if err := m.SetBatch(in, tg, B, T); err != nil {
				t.Fatal(err)
			}
			sum, err := m.Forward(true, 1/float32(valid))
			if err != nil {
				t.Fatal(err)
			}
			m.Backward()
			losses = append(losses, sum/float64(valid))
			if step == 0 {
				for _, p := range m.Params {
					g, _ := be.Download(p.Grad)
					grads = append(grads, model.NamedTensor{Name: p.Name, Shape: p.Grad.Shape, Data: g})
					if p.Compressed() {
						P := m.Projection(p.Layer, p.Group)
						pd, _ := be.Download(P)
						grads = append(grads, model.NamedTensor{Name: p.Name + ".P", Shape: P.Shape, Data: pd})
					}
				}
			}
			if _, err := opt.Update(cfg.Train.LR); err != nil {
				t.Fatal(err)
			}
		}
		write("ours.safetensors", func(w io.Writer) error { return model.WriteSafetensors(w, grads) })
		meta := map[string]any{"inputs": in, "targets": tg, "B": B, "T": T, "losses": losses, "device": be.Name(),
			"lr": cfg.Train.LR, "betas": []float64{cfg.Train.Beta1, cfg.Train.Beta2}, "eps": cfg.AdamEpsilon(),
			"grad_clip": cfg.Train.GradClip, "compact": compact, "optimizer": cfg.OptimizerName(),
			"alpha": cfg.Compact.Alpha, "o_proj_scale": cfg.Compact.OProjScale, "compact_eps": cfg.Compact.Eps}
		js, _ := json.MarshalIndent(meta, "", " ")
		os.WriteFile(filepath.Join(dir, "ours.json"), js, 0o644)
		be.Close()
	}
}
