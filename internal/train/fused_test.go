package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/optim"
)

// fusedPair builds the same run unfused and fused (grad_clip 0, accum
// micro-batches a step) on be, both initialised from one seed.
func fusedPair(t *testing.T, be func() gpu.Backend, cfg config.Config, accum int) (ms [2]*model.Model, opts [2]*optim.Optimizer) {
	t.Helper()
	cfg.Train.GradClip, cfg.Train.GradAccum = 0, accum
	for i, fused := range []bool{false, true} {
		c := cfg
		c.Train.FusedUpdate = fused
		m, err := NewModel(be(), c)
		if err != nil {
			t.Fatal(err)
		}
		if m.Fused() != fused {
			t.Fatalf("fused_update %v built a model with Fused() %v", fused, m.Fused())
		}
		if err := m.Init(3); err != nil {
			t.Fatal(err)
		}
		o, err := optim.New(m, c.OptimizerConfig())
		if err != nil {
			t.Fatal(err)
		}
		ms[i], opts[i] = m, o
	}
	return ms, opts
}

// trainStep is one training step of one micro-batch as the trainer takes
// it, returning the device loss sum and the gradient norm.
func trainStep(t *testing.T, m *model.Model, o *optim.Optimizer, in, tg []int32, B, T int, lr float64) (float64, float64) {
	t.Helper()
	loss := accumStep(t, m, o, [][2][]int32{{in, tg}}, B, T, lr)
	gn, err := o.GradNorm()
	if err != nil {
		t.Fatal(err)
	}
	return loss, gn
}

func randomBatch(rng *rand.Rand, n, vocab int) (in, tg []int32) {
	in, tg = make([]int32, n), make([]int32, n)
	for i := range in {
		in[i], tg[i] = int32(rng.IntN(vocab)), int32(rng.IntN(vocab))
	}
	return in, tg
}

// On the CPU the fused step gives the unfused step's bits: every weight and
// moment after every step, and every loss (so each forward used the same
// weights and the same projection epoch). update_gap 2 resamples P at steps
// 3 and 5, where the forward of step t must already use step t's P.
func TestFusedStepIsBitIdentical(t *testing.T) {
	cases := []struct {
		name            string
		compact, tied   bool
		weights, states string
		rc              string
	}{
		{"full", false, false, config.WeightsMaster, config.StateFP32, "none"},
		{"compact", true, false, config.WeightsMaster, config.StateFP32, "none"},
		{"compact-tied", true, true, config.WeightsMaster, config.StateFP32, "mlp"},
		{"compact-bf16_sr", true, false, config.WeightsBF16SR, config.StateFP32, "block"},
		{"compact-bf16_sr-bf16-qkv_mlp", true, false, config.WeightsBF16SR, config.StateBF16, "qkv_mlp"},
		{"compact-bf16_sr-bf16-tied", true, true, config.WeightsBF16SR, config.StateBF16, "none"},
		{"full-bf16_sr-bf16", false, false, config.WeightsBF16SR, config.StateBF16, "none"},
		{"compact-head-bf16_sr-bf16", true, false, config.WeightsBF16SR, config.StateBF16, "block"},
		{"compact-head", true, false, config.WeightsMaster, config.StateFP32, "none"},
		{"compact-oproj", true, false, config.WeightsMaster, config.StateFP32, "qkv_mlp"},
		{"compact-oproj-bf16_sr-int8", true, false, config.WeightsBF16SR, config.StateInt8, "block"},
	}
	for _, c := range cases {
		cfg := leanConfig(c.compact)
		cfg.Model.TieEmbeddings = c.tied
		cfg.Compact.Head = strings.Contains(c.name, "-head")
		if strings.Contains(c.name, "-oproj") {
			cfg.Compact.Layers = model.CompressibleLayers
		}
		cfg.Train.Weights, cfg.Train.OptimizerState, cfg.Train.Recompute = c.weights, c.states, c.rc
		cfg.Compact.UpdateGap = 2
		ms, opts := fusedPair(t, func() gpu.Backend { return cpu.New(2) }, cfg, 1)
		rng := rand.New(rand.NewPCG(5, 6))
		B, T := 2, 8
		for step := 1; step <= 5; step++ {
			in, tg := randomBatch(rng, B*T, cfg.Model.VocabSize)
			lr := 0.01 / float64(step)
			l0, g0 := trainStep(t, ms[0], opts[0], in, tg, B, T, lr)
			l1, g1 := trainStep(t, ms[1], opts[1], in, tg, B, T, lr)
			if l0 != l1 {
				t.Fatalf("%s step %d: loss %v unfused, %v fused", c.name, step, l0, l1)
			}
			// The norm is summed group by group: equal up to reassociation.
			if math.Abs(g0-g1) > 1e-5*g0 || g0 == 0 {
				t.Fatalf("%s step %d: gradient norm %v unfused, %v fused", c.name, step, g0, g1)
			}
			for i, p := range ms[0].Params {
				q := ms[1].Params[i]
				for k, x := range [][2]*gpu.Tensor{{p.W, q.W}, {opts[0].M[i], opts[1].M[i]}, {opts[0].V[i], opts[1].V[i]}} {
					a, b := mustRead(t, ms[0], p, x[0]), mustRead(t, ms[1], q, x[1])
					for j := range a {
						if math.Float32bits(a[j]) != math.Float32bits(b[j]) {
							t.Fatalf("%s step %d: %s %s element %d: unfused %v, fused %v",
								c.name, step, p.Name, [...]string{"weight", "exp_avg", "exp_avg_sq"}[k], j, a[j], b[j])
						}
					}
				}
			}
		}
		for i := range ms {
			opts[i].Free()
			ms[i].Free()
		}
	}
}

// A classifier's score head is updated from the fused forward as well.
func TestFusedClassifierIsBitIdentical(t *testing.T) {
	cfg := leanConfig(true)
	cfg.Finetune.NumLabels = 3
	ms, opts := fusedPair(t, func() gpu.Backend { return cpu.New(2) }, cfg, 1)
	B, T := 2, 8
	rng := rand.New(rand.NewPCG(7, 8))
	for step := 1; step <= 2; step++ {
		in, _ := randomBatch(rng, B*T, cfg.Model.VocabSize)
		tg := make([]int32, B*T)
		for i := range tg {
			tg[i] = -1
		}
		tg[T-1], tg[2*T-1] = 1, 2
		l0, _ := trainStep(t, ms[0], opts[0], in, tg, B, T, 0.01)
		l1, _ := trainStep(t, ms[1], opts[1], in, tg, B, T, 0.01)
		if l0 != l1 {
			t.Fatalf("step %d: loss %v unfused, %v fused", step, l0, l1)
		}
	}
	for i, p := range ms[0].Params {
		a, b := mustRead(t, ms[0], p, p.W), mustRead(t, ms[1], ms[1].Params[i], ms[1].Params[i].W)
		for j := range a {
			if a[j] != b[j] {
				t.Fatalf("%s element %d: unfused %v, fused %v", p.Name, j, a[j], b[j])
			}
		}
	}
}

// A non-finite gradient anywhere still shows in the fused step's norm.
func TestFusedNormSeesNonFinite(t *testing.T) {
	cfg := leanConfig(true)
	ms, opts := fusedPair(t, func() gpu.Backend { return cpu.New(2) }, cfg, 1)
	m := ms[1]
	p := m.Param("model.layers.0.mlp.down_proj.weight")
	w := mustRead(t, m, p, p.W)
	w[0] = float32(math.Inf(1))
	if err := m.WriteParam(p, p.W, w); err != nil {
		t.Fatal(err)
	}
	in, tg := randomBatch(rand.New(rand.NewPCG(1, 2)), 16, cfg.Model.VocabSize)
	if _, gn := trainStep(t, m, opts[1], in, tg, 2, 8, 0.01); !math.IsNaN(gn) && !math.IsInf(gn, 0) {
		t.Fatalf("gradient norm %v with an infinite weight: want non-finite", gn)
	}
}

// Misuse is an error, never silently lost gradients or a double update.
func TestFusedMisuse(t *testing.T) {
	cfg := leanConfig(true)
	ms, opts := fusedPair(t, func() gpu.Backend { return cpu.New(2) }, cfg, 1)
	m, o := ms[1], opts[1]
	in, tg := randomBatch(rand.New(rand.NewPCG(1, 2)), 16, cfg.Model.VocabSize)
	if err := m.SetBatch(in, tg, 2, 8); err != nil {
		t.Fatal(err)
	}
	if err := m.ForwardDeferred(1); err == nil || !strings.Contains(err.Error(), "fused update") {
		t.Errorf("training forward outside a step: err %v, want a fused-update error", err)
	}
	if err := o.Apply(0.01); err == nil {
		t.Error("Apply on a fused model: no error")
	}
	o.Begin(0.01, true)
	if err := o.Finish(0.01); err == nil || !strings.Contains(err.Error(), "0 updates") {
		t.Errorf("a step without backward: err %v, want a count error", err)
	}
	c := cfg
	c.Train.FusedUpdate = true
	if _, err := optim.New(m, c.OptimizerConfig()); err == nil {
		t.Error("fused optimizer with grad_clip 1: no error")
	}
}

// fused_update needs grad_clip 0, and says so naming both keys.
func TestFusedUpdateNeedsNoClip(t *testing.T) {
	_, err := config.Load("", []string{"train.fused_update=true"})
	if err == nil || !config.IsUsage(err) || !strings.Contains(err.Error(), "train.grad_clip") || !strings.Contains(err.Error(), "train.fused_update") {
		t.Fatalf("fused_update with the default grad_clip: err %v, want a usage error naming both keys", err)
	}
	cfg, err := config.Load("", []string{"train.fused_update=true", "train.grad_clip=0"})
	if err != nil || !cfg.Train.FusedUpdate {
		t.Fatalf("fused_update with grad_clip 0: %v", err)
	}
	// With accumulation the step stays fused and the sums live in the
	// gradient arena.
	cfg.Train.GradAccum, cfg.Train.Device = 2, "cpu"
	cfg.Model.VocabSize, cfg.Model.Hidden, cfg.Model.Intermediate, cfg.Model.Layers = 96, 32, 64, 1
	m, err := NewModel(cpu.New(1), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Fused() || m.Layout().Grads == nil {
		t.Error("grad_accum 2: want the fused engine with its gradient arena")
	}
}

// A whole fused run is the unfused run, to the bit (grad_clip 0, no
// accumulation), and resumes bit-identically (TestResumeIsBitIdentical).
func TestFusedRunMatchesUnfused(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig(t, dir)
	cfg.Train.GradClip, cfg.Train.GradAccum, cfg.Train.Steps = 0, 1, 8
	cfg = leanVariant(cfg)
	var outs [2]string
	for i, fused := range []bool{false, true} {
		c := cfg
		c.Train.FusedUpdate = fused
		outs[i] = filepath.Join(dir, []string{"unfused", "fused"}[i])
		if err := Pretrain(context.Background(), c, RunOptions{Out: outs[i]}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := readMetrics(t, outs[0]), readMetrics(t, outs[1])
	if len(a) != len(b) {
		t.Fatalf("%d vs %d metric lines", len(a), len(b))
	}
	for i := range a {
		if a[i].Loss != b[i].Loss || (a[i].ValLoss == nil) != (b[i].ValLoss == nil) || (a[i].ValLoss != nil && *a[i].ValLoss != *b[i].ValLoss) {
			t.Fatalf("step %d: unfused %+v, fused %+v", a[i].Step, a[i], b[i])
		}
	}
	for _, name := range []string{"model.safetensors", "optimizer.safetensors"} {
		x, _ := os.ReadFile(filepath.Join(checkpoint.StepDir(filepath.Join(outs[0], "checkpoints"), 8), name))
		y, _ := os.ReadFile(filepath.Join(checkpoint.StepDir(filepath.Join(outs[1], "checkpoints"), 8), name))
		if len(x) == 0 || string(x) != string(y) {
			t.Errorf("%s: the fused run's checkpoint differs from the unfused run's", name)
		}
	}
}

// The fused engine's prediction is what the CPU allocates, and it drops the
// gradient arena for one block's gradients plus the embedding's.
func TestFusedMemoryPrediction(t *testing.T) {
	cfg := config.Default()
	cfg.Model.VocabSize, cfg.Model.Hidden, cfg.Model.Intermediate, cfg.Model.Layers = 300, 64, 160, 3
	cfg.Train.GradClip = 0
	for _, compact := range []bool{false, true} {
		cfg.Compact.Enabled = compact
		base, err := PredictMemory(cfg, 4, 64, "cpu")
		if err != nil {
			t.Fatal(err)
		}
		fc := cfg
		fc.Train.FusedUpdate = true
		pred := predictedAsAllocated(t, fmt.Sprintf("compact %v", compact), fc)
		// Scratch: the largest block's gradients (norms and linears) and
		// the embedding's; the rest of the arena is gone.
		C := cfg.Model.Hidden
		embed := int64(4 * roundTo(cfg.Model.VocabSize*C))
		if pred.PeakAt[gpu.Grads] <= embed || pred.PeakAt[gpu.Grads] >= base.PeakAt[gpu.Grads]/2 {
			t.Errorf("compact %v: fused gradients %d bytes, unfused %d, embedding %d", compact, pred.PeakAt[gpu.Grads], base.PeakAt[gpu.Grads], embed)
		}
		if saved := base.PeakAll - pred.PeakAll; saved < base.PeakAt[gpu.Grads]-pred.PeakAt[gpu.Grads] {
			t.Errorf("compact %v: peak drops %d bytes, less than the %d gradient bytes saved", compact, saved, base.PeakAt[gpu.Grads]-pred.PeakAt[gpu.Grads])
		}
	}
}

func roundTo(n int) int { return (n + 127) / 128 * 128 }

// A stop inside the LM head's chunk loop abandons the step: the head is not
// updated from a partial gradient and the forward reports the interrupt
// (review finding: it used to update the head, after which the stop was no
// longer polled and a corrupted step was checkpointed as complete).
func TestFusedInterruptInHeadAbandonsStep(t *testing.T) {
	cfg := leanConfig(true)
	cfg.Model.TieEmbeddings = false
	cfg.Train.GradClip, cfg.Train.FusedUpdate, cfg.Train.LossChunk = 0, true, 4
	ms, opts := fusedPair(t, func() gpu.Backend { return cpu.New(2) }, cfg, 1)
	m, o := ms[1], opts[1]
	var head *model.Param
	for _, p := range m.Params {
		if p.Name == "lm_head.weight" {
			head = p
		}
	}
	before := mustRead(t, m, head, head.W)
	in, tg := randomBatch(rand.New(rand.NewPCG(1, 2)), 16, cfg.Model.VocabSize)
	calls := 0
	m.Stop = func() bool { calls++; return calls >= cfg.Model.Layers+1 } // after the blocks, in head chunk 1
	o.Begin(0.01, true)
	m.ZeroGrads()
	if err := m.SetBatch(in, tg, 2, 8); err != nil {
		t.Fatal(err)
	}
	if err := m.ZeroLoss(); err != nil {
		t.Fatal(err)
	}
	if err := m.ForwardDeferred(1 / 16.); !errors.Is(err, model.ErrInterrupted) {
		t.Fatalf("stop inside the head: forward returned %v, want ErrInterrupted", err)
	}
	after := mustRead(t, m, head, head.W)
	for i := range before {
		if math.Float32bits(before[i]) != math.Float32bits(after[i]) {
			t.Fatalf("lm_head updated from a partial gradient (element %d)", i)
		}
	}
}
