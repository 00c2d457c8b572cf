package train

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/optim"
)

func leanConfig(compact bool) config.Config {
	cfg := config.Default()
	cfg.Model.VocabSize, cfg.Model.Hidden, cfg.Model.Intermediate, cfg.Model.Layers = 96, 32, 64, 2
	cfg.Model.Heads, cfg.Model.KVHeads = 4, 2
	cfg.Compact.Enabled, cfg.Compact.Rank = compact, 0.5
	cfg.Train.WeightDecay, cfg.Train.GradClip, cfg.Train.Device = 0.1, 1, "cpu"
	cfg.Train.Weights = config.WeightsMaster // the fp32 step the lean variants are compared with
	return cfg
}

func leanVariant(cfg config.Config) config.Config {
	cfg.Train.Weights, cfg.Train.OptimizerState = config.WeightsBF16SR, config.StateBF16
	return cfg
}

func buildPair(t *testing.T, cfg config.Config) (*model.Model, *optim.Optimizer) {
	t.Helper()
	m, err := NewModel(cpu.New(2), cfg)
	if err != nil {
		t.Fatal(err)
	}
	o, err := optim.New(m, cfg.OptimizerConfig())
	if err != nil {
		t.Fatal(err)
	}
	return m, o
}

// setGrads writes the same deterministic gradients into every param.
func setGrads(t *testing.T, m *model.Model, phase float64) {
	t.Helper()
	for i, p := range m.Params {
		g := make([]float32, len(mustRead(t, m, p, p.Grad)))
		for j := range g {
			g[j] = float32(0.05 * math.Sin(float64(7*i+j)+phase))
		}
		if err := m.WriteParam(p, p.Grad, g); err != nil {
			t.Fatal(err)
		}
	}
}

func mustRead(t *testing.T, m *model.Model, p *model.Param, x *gpu.Tensor) []float32 {
	t.Helper()
	d, _, err := m.ReadParam(p, x)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// neighbour reports whether y is x rounded to bf16 one way or the other.
func neighbour(y, x float32) bool {
	lo := math.Float32frombits(math.Float32bits(x) & 0xffff0000)
	return y == lo || (math.Float32bits(x)&0xffff != 0 && math.Float32bits(y) == math.Float32bits(lo)+0x10000)
}

// One master-free, bf16-state step from the same bf16 weights and gradients
// as an fp32 step lands every weight and moment on a bf16 neighbour of the
// fp32 result, rounding both ways: the fused lean ops keep the fp32
// arithmetic and only the final store rounds.
func TestLeanStepRoundsTheFP32Step(t *testing.T) {
	for _, c := range []struct {
		compact         bool
		weights, states string
	}{{false, config.WeightsBF16SR, config.StateBF16}, {true, config.WeightsBF16SR, config.StateBF16}, {true, config.WeightsBF16SR, config.StateFP32}, {true, config.WeightsMaster, config.StateBF16}} {
		compact := c.compact
		ref := leanConfig(compact)
		lc := ref
		lc.Train.Weights, lc.Train.OptimizerState = c.weights, c.states
		mR, oR := buildPair(t, ref)
		mL, oL := buildPair(t, lc)
		if err := mL.Init(5); err != nil {
			t.Fatal(err)
		}
		for i, p := range mL.Params {
			if err := mR.WriteParam(mR.Params[i], updated(mR.Params[i]), mustRead(t, mL, p, p.W)); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range []*model.Model{mR, mL} {
			setGrads(t, m, 0.3)
		}
		for _, o := range []*optim.Optimizer{oR, oL} {
			o.BeginStep()
			if _, err := o.Update(0.01); err != nil {
				t.Fatal(err)
			}
		}
		var up, total int
		for i, p := range mL.Params {
			q := mR.Params[i]
			for k, x := range [][2]*gpu.Tensor{{p.W, q.W}, {oL.M[i], oR.M[i]}, {oL.V[i], oR.V[i]}} {
				lean, fp32 := mustRead(t, mL, p, x[0]), mustRead(t, mR, q, x[1])
				if (k == 0 && c.weights == config.WeightsMaster) || (k > 0 && c.states == config.StateFP32) {
					for j := range lean { // not rounded: the fp32 path's very bits
						if math.Float32bits(lean[j]) != math.Float32bits(fp32[j]) {
							t.Fatalf("%+v: %s element %d: %g, fp32 path %g", c, x[0].Name, j, lean[j], fp32[j])
						}
					}
					continue
				}
				for j := range lean {
					if !gpu.IsBF16(lean[j]) || !neighbour(lean[j], fp32[j]) {
						t.Fatalf("%+v: %s element %d: lean %g is not a bf16 neighbour of fp32 %g", c, p.Name, j, lean[j], fp32[j])
					}
					if math.Float32bits(lean[j]) != math.Float32bits(fp32[j])&0xffff0000 {
						up++
					}
					total++
				}
			}
		}
		if up < total/10 || up > total*9/10 {
			t.Errorf("%+v: %d of %d values rounded away from zero: not stochastic", c, up, total)
		}
	}
}

// Training steps on real text in master-free mode keep every weight and
// moment bf16 and change the weights.
func TestMasterFreeTrainingKeepsBF16(t *testing.T) {
	dir := t.TempDir()
	cfg := leanVariant(smallConfig(t, dir))
	cfg.Train.Steps, cfg.Train.CheckpointEvery, cfg.Train.EvalEvery = 3, 3, 0
	tr, err := newTrainer(cfg, RunOptions{Out: filepath.Join(dir, "run")})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	before := map[string][]float32{}
	for _, p := range tr.model.Params {
		before[p.Name] = mustRead(t, tr.model, p, p.W)
	}
	if err := tr.run(t.Context()); err != nil {
		t.Fatal(err)
	}
	changed := 0
	for i, p := range tr.model.Params {
		for _, x := range []*gpu.Tensor{p.W, tr.opt.M[i], tr.opt.V[i]} {
			for j, v := range mustRead(t, tr.model, p, x) {
				if !gpu.IsBF16(v) {
					t.Fatalf("%s (%s) element %d = %g is not a bf16 value", p.Name, x.Name, j, v)
				}
			}
		}
		w := mustRead(t, tr.model, p, p.W)
		for j := range w {
			if w[j] != before[p.Name][j] {
				changed++
			}
		}
	}
	if changed == 0 {
		t.Fatal("no weight changed in three master-free steps")
	}
}

// bf16 moments are saved as BF16 and restored bit for bit.
func TestCheckpointBF16Moments(t *testing.T) {
	cfg := leanVariant(leanConfig(true))
	m, o := buildPair(t, cfg)
	m.Init(3)
	setGrads(t, m, 1.1)
	o.BeginStep()
	if _, err := o.Update(0.01); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dir, err := checkpoint.Save(root, m, o, checkpoint.TrainerState{Step: 1, Config: cfg}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	f, err := model.OpenSafetensors(filepath.Join(dir, checkpoint.OptimizerFile))
	if err != nil {
		t.Fatal(err)
	}
	for name, ti := range f.Tensors {
		if ti.DType != "BF16" {
			t.Errorf("%s saved as %s, want BF16", name, ti.DType)
		}
	}
	f.Close()
	m2, o2 := buildPair(t, cfg)
	if err := checkpoint.Load(dir, m2, o2); err != nil {
		t.Fatal(err)
	}
	for i, p := range m.Params {
		for _, x := range [][2]*gpu.Tensor{{p.W, m2.Params[i].W}, {o.M[i], o2.M[i]}, {o.V[i], o2.V[i]}} {
			a, b := mustRead(t, m, p, x[0]), mustRead(t, m2, m2.Params[i], x[1])
			for j := range a {
				if math.Float32bits(a[j]) != math.Float32bits(b[j]) {
					t.Fatalf("%s (%s) element %d: saved %g, loaded %g", p.Name, x[0].Name, j, a[j], b[j])
				}
			}
		}
	}
	st, _ := os.Stat(filepath.Join(dir, checkpoint.OptimizerFile))
	t.Logf("optimizer.safetensors: %d bytes", st.Size())
}

// The prediction for CUDA drops exactly the fp32 master copy with bf16_sr,
// halves the moments with bf16 state, and adds only the compressed
// update's buffer.
func TestLeanMemoryPrediction(t *testing.T) {
	cfg := config.Default()
	cfg.Model.Intermediate = 1376
	cfg.Train.Weights = config.WeightsMaster
	base, err := PredictMemory(cfg, 8, 256, "cuda")
	if err != nil {
		t.Fatal(err)
	}
	lean, err := PredictMemory(leanVariant(cfg), 8, 256, "cuda")
	if err != nil {
		t.Fatal(err)
	}
	if base.PeakAt[gpu.Master] == 0 || lean.PeakAt[gpu.Master] != 0 {
		t.Errorf("master bytes: fp32 master %d, master-free %d (want > 0 and 0)", base.PeakAt[gpu.Master], lean.PeakAt[gpu.Master])
	}
	if 2*lean.PeakAt[gpu.Optimizer] != base.PeakAt[gpu.Optimizer] {
		t.Errorf("optimizer bytes: bf16 state %d, fp32 state %d (want half)", lean.PeakAt[gpu.Optimizer], base.PeakAt[gpu.Optimizer])
	}
	// The fused lean ops stage nothing: the one extra buffer is the fp32 D
	// of the master-free compressed update, as long as the longest
	// compressed weight.
	m, err := NewModel(gpu.NewMeter(2, 4).Backend(), leanVariant(cfg))
	if err != nil {
		t.Fatal(err)
	}
	longest := 0
	for _, p := range m.Params {
		if p.Compressed() {
			longest = max(longest, p.W.Len())
		}
	}
	if extra, want := lean.PeakAt[gpu.Workspace]-base.PeakAt[gpu.Workspace], int64(4*min(longest, 1<<23)); extra != want { // 1<<23: optim's update chunk
		t.Errorf("lean workspace exceeds the fp32 one by %d bytes, want %d (the compressed update's D)", extra, want)
	}
	for c := gpu.Category(0); c < gpu.NumCategories; c++ {
		if c != gpu.Master && c != gpu.Optimizer && c != gpu.Workspace && lean.PeakAt[c] != base.PeakAt[c] {
			t.Errorf("%s: lean %d, base %d: only master, optimizer and workspace may change", c, lean.PeakAt[c], base.PeakAt[c])
		}
	}
}

// updated is the tensor p's update changes: its master when it has one.
func updated(p *model.Param) *gpu.Tensor {
	if p.Master != nil {
		return p.Master
	}
	return p.W
}

// 8-bit moments take one byte per element and an fp32 scale per 128 in the
// prediction for CUDA: (1 + 4/128) / 2 of the bf16 moments' bytes, nothing
// else changed.
func TestInt8MemoryPrediction(t *testing.T) {
	cfg := leanVariant(config.Default())
	bf16, err := PredictMemory(cfg, 8, 256, "cuda")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Train.OptimizerState = config.StateInt8
	int8, err := PredictMemory(cfg, 8, 256, "cuda")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(gpu.NewMeter(2, 4).Backend(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := int64(m.Layout().GradLen) // the moments' length: a multiple of 128
	if want := 2 * (g + 4*g/128); int8.PeakAt[gpu.Optimizer] != want || bf16.PeakAt[gpu.Optimizer] != 2*2*g {
		t.Errorf("optimizer bytes: int8 %d (want %d), bf16 %d (want %d)", int8.PeakAt[gpu.Optimizer], want, bf16.PeakAt[gpu.Optimizer], 4*g)
	}
	for c := gpu.Category(0); c < gpu.NumCategories; c++ {
		if c != gpu.Optimizer && int8.PeakAt[c] != bf16.PeakAt[c] {
			t.Errorf("%s: int8 %d, bf16 %d: only the optimizer state may change", c, int8.PeakAt[c], bf16.PeakAt[c])
		}
	}
}
