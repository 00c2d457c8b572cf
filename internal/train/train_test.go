package train

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/optim"
	"github.com/compact-llm/compact/internal/projection"
)

// smallConfig trains a very small model on shards of real text (the Go
// sources, byte-tokenized) written into dir.
func smallConfig(t *testing.T, dir string) config.Config {
	t.Helper()
	t.Setenv("COMPACT_CACHE", filepath.Join(dir, "cache"))
	tok, err := data.NewTokenizer("byte")
	if err != nil {
		t.Fatal(err)
	}
	trainGlob, valGlob, err := data.DefaultCorpus(tok, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Model.VocabSize, cfg.Model.Hidden, cfg.Model.Intermediate = 257, 32, 64
	cfg.Model.Layers, cfg.Model.Heads, cfg.Model.KVHeads, cfg.Model.MaxSeqLen = 2, 4, 2, 32
	cfg.Train.SeqLen, cfg.Train.MicroBatch, cfg.Train.Steps = 32, 4, 12
	cfg.Train.LR, cfg.Train.GradAccum = 3e-3, 2
	cfg.Train.LogEvery, cfg.Train.EvalEvery, cfg.Train.EvalBatches = 1, 4, 2
	cfg.Train.CheckpointEvery, cfg.Train.KeepCheckpoints = 4, 3
	cfg.Train.Device, cfg.Train.Threads = "cpu", 2
	cfg.Compact.UpdateGap = 3 // P changes during the run, and across the resume point
	cfg.Data.Tokenizer = "byte"
	cfg.Data.Train, cfg.Data.Val = []string{trainGlob}, []string{valGlob}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func readMetrics(t *testing.T, dir string) []Metric {
	t.Helper()
	m, err := ReadMetrics(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sameTrajectory compares everything in two metric logs but wall-clock time.
func sameTrajectory(t *testing.T, a, b []Metric) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d metric lines vs %d", len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Step != y.Step || x.Loss != y.Loss || x.LR != y.LR || x.Tokens != y.Tokens || x.GradNorm != y.GradNorm ||
			(x.ValLoss == nil) != (y.ValLoss == nil) || (x.ValLoss != nil && *x.ValLoss != *y.ValLoss) {
			t.Fatalf("line %d differs:\n%+v\n%+v", i, x, y)
		}
	}
}

func TestResumeIsBitIdentical(t *testing.T) {
	// The lean cases are master-free bf16 weights with bf16 moments: the
	// stochastic rounding must draw the same noise after the resume. The
	// fused cases update inside backward (grad_clip 0), the first without
	// accumulation, the int8 one with two micro-batches a step: 8-bit
	// moments are saved decoded and must load back to the same codes and
	// scales.
	// The last cases compress o_proj too (its r-space moments are saved and
	// loaded as the other compressed layers' are) and sum the two
	// micro-batches in bf16 (the sums' rounding keys follow the step).
	for _, c := range []struct {
		compact, lean, fused bool
		state                string
		o                    bool
		sums                 string
	}{{true, false, false, "", false, ""}, {false, false, false, "", false, ""}, {true, true, false, "", false, ""}, {true, true, true, "", false, ""},
		{true, true, false, config.StateInt8, false, ""}, {true, true, true, config.StateInt8, false, ""}, {false, true, false, config.StateInt8, false, ""},
		{true, true, true, config.StateInt8, true, config.StateBF16}, {true, true, false, "", false, config.StateBF16}} {
		compact := c.compact
		dir := t.TempDir()
		cfg := smallConfig(t, dir)
		cfg.Compact.Enabled = compact
		if c.o {
			cfg.Compact.Layers = model.CompressibleLayers
		}
		if c.sums != "" {
			cfg.Train.GradAccumState = c.sums
		}
		if c.lean {
			cfg = leanVariant(cfg)
		}
		if c.state != "" {
			cfg.Train.OptimizerState = c.state
		}
		if c.fused {
			cfg.Train.FusedUpdate, cfg.Train.GradClip = true, 0
			if c.state == "" {
				cfg.Train.GradAccum = 1
			}
		}
		full := filepath.Join(dir, "full")
		if err := Pretrain(context.Background(), cfg, RunOptions{Out: full}); err != nil {
			t.Fatal(err)
		}
		// A crash after step 9: checkpoints 8 and 12 never completed (8 left
		// a temporary directory), metrics has lines through step 9.
		crashed := filepath.Join(dir, "crashed")
		if err := os.CopyFS(crashed, os.DirFS(full)); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(checkpoint.StepDir(filepath.Join(crashed, "checkpoints"), 12))
		os.Rename(checkpoint.StepDir(filepath.Join(crashed, "checkpoints"), 8), filepath.Join(crashed, "checkpoints", ".tmp-step-0000008"))
		lines := readMetrics(t, full)
		f, _ := os.Create(filepath.Join(crashed, "metrics.jsonl"))
		for _, m := range lines[:9] {
			l, _ := OpenMetrics(crashed, 1<<30, 0)
			l.Write(m)
			l.Close()
		}
		f.Close()
		if err := Pretrain(context.Background(), cfg, RunOptions{Out: crashed, Resume: true}); err != nil {
			t.Fatal(err)
		}
		sameTrajectory(t, readMetrics(t, full), readMetrics(t, crashed))
		for _, name := range []string{"model.safetensors", "optimizer.safetensors"} {
			a, _ := os.ReadFile(filepath.Join(checkpoint.StepDir(filepath.Join(full, "checkpoints"), 12), name))
			b, _ := os.ReadFile(filepath.Join(checkpoint.StepDir(filepath.Join(crashed, "checkpoints"), 12), name))
			if len(a) == 0 || string(a) != string(b) {
				t.Errorf("compact %v lean %v fused %v state %q o_proj %v sums %q: %s after resume differs from the uninterrupted run", compact, c.lean, c.fused, c.state, c.o, c.sums, name)
			}
		}
	}
}

func TestLossFallsOnRealText(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig(t, dir)
	cfg.Train.Steps, cfg.Train.EvalEvery, cfg.Train.CheckpointEvery = 40, 20, 0
	if err := Pretrain(context.Background(), cfg, RunOptions{Out: dir}); err != nil {
		t.Fatal(err)
	}
	m := readMetrics(t, dir)
	first, last := m[0], m[len(m)-1]
	if last.ValLoss == nil || first.Loss-last.Loss < 1.0 {
		t.Fatalf("loss %.3f -> %.3f: did not fall by 1 nat", first.Loss, last.Loss)
	}
	mr, err := os.ReadFile(filepath.Join(dir, "memreport.json"))
	if err != nil || !strings.Contains(string(mr), "measured_peak_bytes") {
		t.Fatalf("memreport.json: %v %s", err, mr)
	}
}

// On the CPU the metered prediction must equal what the backend allocated.
// predictedAsAllocated is cfg's CPU prediction for micro-batch 4 x 64,
// checked against what building the model, optimizer and activations on
// the CPU allocates.
func predictedAsAllocated(t *testing.T, what string, cfg config.Config) Prediction {
	t.Helper()
	pred, err := PredictMemory(cfg, 4, 64, "cpu")
	if err != nil {
		t.Fatal(err)
	}
	be := cpu.New(1)
	m, err := NewModel(be, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := optim.New(m, cfg.OptimizerConfig()); err != nil {
		t.Fatal(err)
	}
	if err := m.Prepare(4, 64); err != nil {
		t.Fatal(err)
	}
	got := be.Memory().Snapshot()
	if got.PeakAll != pred.PeakAll || got.Peak != pred.PeakAt {
		t.Errorf("%s: predicted %v, allocated %v", what, pred.PeakAt, got.Peak)
	}
	return pred
}

func TestPredictedMemoryMatchesCPU(t *testing.T) {
	cfg := config.Default()
	cfg.Model.VocabSize, cfg.Model.Hidden, cfg.Model.Intermediate, cfg.Model.Layers = 300, 64, 160, 3
	for _, compact := range []bool{false, true} {
		for _, rc := range []string{"none", "mlp", "qkv_mlp", "block", "none+bf16_sr", "qkv_mlp+bf16_sr+bf16", "block+bf16_sr+bf16", "mlp+bf16_sr+int8", "none+master+int8"} {
			cfg.Compact.Enabled, cfg.Train.Recompute = compact, rc
			cfg.Train.Weights, cfg.Train.OptimizerState = config.WeightsMaster, config.StateFP32
			if r, opts, ok := strings.Cut(rc, "+"); ok {
				cfg.Train.Recompute = r
				w, st, _ := strings.Cut(opts, "+")
				cfg.Train.Weights = w
				if st != "" {
					cfg.Train.OptimizerState = st
				}
			}
			pred := predictedAsAllocated(t, fmt.Sprintf("compact %v recompute %s", compact, rc), cfg)
			var kinds int64
			for _, b := range pred.Kinds {
				kinds += b
			}
			if kinds != pred.PeakAt[gpu.Activations] {
				t.Errorf("activation kinds sum to %d, activations are %d", kinds, pred.PeakAt[gpu.Activations])
			}
		}
	}
	full := config.Default()
	full.Compact.Enabled = false
	base, _ := PredictMemory(full, 64, 256, "cuda")
	small, _ := PredictMemory(config.Default(), 64, 256, "cuda")
	if small.PeakAt[gpu.Optimizer] >= base.PeakAt[gpu.Optimizer] {
		t.Errorf("CompAct optimizer state %d not below full rank %d", small.PeakAt[gpu.Optimizer], base.PeakAt[gpu.Optimizer])
	}
}

// One compressed Adam step against the formula in float64, in both forms:
// W' = W - lr * alpha * (m^ / (sqrt(v^) + eps)) P^T with m^ = G, v^ = G^2
// (torch), or W' = W - lr * alpha * sqrt(1-b2)/(1-b1) * m/(sqrt(v)+eps) P^T
// with m = (1-b1) G, v = (1-b2) G^2 (HF), i.e. G/(|G| + eps/sqrt(1-b2)).
func TestCompressedUpdateFormula(t *testing.T) {
	for _, form := range []string{config.OptimizerTorch, config.OptimizerHF} {
		cfg := config.Default()
		cfg.Model.VocabSize, cfg.Model.Hidden, cfg.Model.Intermediate, cfg.Model.Layers = 16, 8, 16, 1
		cfg.Model.Heads, cfg.Model.KVHeads = 2, 2
		cfg.Compact.Rank, cfg.Compact.Seed = 0.5, 11
		cfg.Train.GradClip, cfg.Train.Optimizer = 0, form
		cfg.Train.Weights = config.WeightsMaster // the float64 formula, not its bf16 rounding
		be := cpu.New64(1)
		m, err := NewModel(be, cfg)
		if err != nil {
			t.Fatal(err)
		}
		m.Init(1)
		opt, _ := optim.New(m, cfg.OptimizerConfig())
		p := m.Param("model.layers.0.mlp.down_proj.weight")
		rows, n, r := p.W.Shape[0], p.W.Shape[1], p.Group.Rank
		G := make([]float64, rows*r)
		for i := range G {
			G[i] = math.Sin(float64(i)+1) * 1e-4 // small enough that eps matters
		}
		cpu.UploadF64(be, p.Grad, G)
		w0, _ := be.DownloadF64(p.W)
		const lr = 1.0 / 128 // exact in the float32 hyper-parameters
		opt.BeginStep()
		if _, err := opt.Update(lr); err != nil {
			t.Fatal(err)
		}
		w1, _ := be.DownloadF64(p.W)
		P := lowProjection(n, r, 11, projection.StreamID(0, projection.GroupDown), 0)
		alpha, eps := cfg.Compact.Alpha, float64(float32(cfg.Compact.Eps))
		if form == config.OptimizerHF {
			eps /= math.Sqrt(1 - float64(float32(cfg.Train.Beta2)))
		}
		var maxErr float64
		for i := 0; i < rows; i++ {
			for k := 0; k < n; k++ {
				var upd float64
				for j := 0; j < r; j++ {
					g := G[i*r+j]
					upd += bf16(alpha*g/(math.Abs(g)+eps)) * P[k*r+j] // the direction is stored in bf16
				}
				want := w0[i*n+k] - lr*upd
				maxErr = math.Max(maxErr, math.Abs(w1[i*n+k]-want))
			}
		}
		if maxErr > 1e-12 {
			t.Errorf("%s: compressed update differs from the formula by %g", form, maxErr)
		}
		for i, q := range m.Params {
			if q.Compressed() && opt.M[i].Shape[1] != q.Group.Rank {
				t.Errorf("%s: compressed moments have shape %v, want rank %d", q.Name, opt.M[i].Shape, q.Group.Rank)
			}
		}
	}
}

func TestScheduleWarmupCosine(t *testing.T) {
	s := optim.Schedule{LR: 1, Warmup: 10, Total: 110, MinRatio: 0.1}
	for step, want := range map[int]float64{1: 0.1, 10: 1, 60: 0.55, 110: 0.1, 200: 0.1} {
		if got := s.At(step); math.Abs(got-want) > 1e-12 {
			t.Errorf("At(%d) = %v, want %v", step, got, want)
		}
	}
}
