package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/optim"
)

// accumStep is a training step as the trainer takes it, over micro-batches
// mbs (inputs and targets of B x T tokens each), returning the loss sum.
func accumStep(t *testing.T, m *model.Model, o *optim.Optimizer, mbs [][2][]int32, B, T int, lr float64) float64 {
	t.Helper()
	o.Begin(lr, true)
	m.ZeroGrads()
	for i, mb := range mbs {
		if err := m.SetBatch(mb[0], mb[1], B, T); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := m.ZeroLoss(); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.ForwardDeferred(1 / float32(len(mbs)*B*T)); err != nil {
			t.Fatal(err)
		}
		m.Backward()
	}
	if err := o.Finish(lr); err != nil {
		t.Fatal(err)
	}
	loss, err := m.LossSum()
	if err != nil {
		t.Fatal(err)
	}
	return loss
}

// The fused update with gradient accumulation is the unfused step to the
// bit on the CPU, at 2 and 4 micro-batches and with fp32 or bf16 sums
// (train.grad_accum_state): the gradients (CompAct's G in r-space, the
// full-rank ones) sum in the gradient arena, and each param is updated
// during the last micro-batch's backward. Every weight and moment after
// every step, every loss; fp32, bf16 and int8 moments, the fp32 and
// master-free weights, tied embeddings, a compressed head, a compressed
// o_proj and a classifier.
func TestFusedAccumIsBitIdentical(t *testing.T) {
	cases := []accumCase{
		{"full", false, false, config.WeightsMaster, config.StateFP32, "none", 0},
		{"compact", true, false, config.WeightsMaster, config.StateFP32, "mlp", 0},
		{"compact-bf16_sr-bf16-tied", true, true, config.WeightsBF16SR, config.StateBF16, "block", 0},
		{"compact-head-bf16_sr-bf16", true, false, config.WeightsBF16SR, config.StateBF16, "qkv_mlp", 0},
		{"compact-bf16_sr-int8", true, false, config.WeightsBF16SR, config.StateInt8, "none", 0},
		{"full-bf16_sr-int8", false, false, config.WeightsBF16SR, config.StateInt8, "none", 0},
		{"compact-classifier", true, false, config.WeightsBF16SR, config.StateBF16, "none", 3},
		{"compact-oproj-bf16_sr-int8", true, false, config.WeightsBF16SR, config.StateInt8, "mlp", 0},
	}
	for _, accum := range []int{2, 4} {
		for _, c := range cases {
			for _, sums := range config.GradAccumStates {
				fusedAccumCase(t, c, accum, sums)
			}
		}
	}
}

// accumCase is one model and precision TestFusedAccumIsBitIdentical steps.
type accumCase struct {
	name            string
	compact, tied   bool
	weights, states string
	rc              string
	labels          int
}

// fusedAccumCase takes four steps of accum micro-batches of c with sums
// stored as sums (train.grad_accum_state), unfused and fused, and compares
// every loss, weight and moment.
func fusedAccumCase(t *testing.T, c accumCase, accum int, sums string) {
	t.Helper()
	name := fmt.Sprintf("%s accum %d sums %s", c.name, accum, sums)
	cfg := leanConfig(c.compact)
	cfg.Train.GradAccumState = sums
	cfg.Model.TieEmbeddings = c.tied
	cfg.Compact.Head = strings.Contains(c.name, "-head")
	if strings.Contains(c.name, "-oproj") {
		cfg.Compact.Layers = model.CompressibleLayers
	}
	cfg.Finetune.NumLabels = c.labels
	cfg.Train.Weights, cfg.Train.OptimizerState, cfg.Train.Recompute = c.weights, c.states, c.rc
	cfg.Compact.UpdateGap = 2
	ms, opts := fusedPair(t, func() gpu.Backend { return cpu.New(2) }, cfg, accum)
	if g := ms[1].Layout().Grads; !ms[1].Fused() || g == nil || (g.Prec == gpu.Low) != (sums == config.StateBF16) {
		t.Fatalf("%s: want a fused model keeping its gradient arena in %s", name, sums)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	B, T := 2, 8
	for step := 1; step <= 4; step++ {
		mbs := make([][2][]int32, accum)
		for i := range mbs {
			in, tg := randomBatch(rng, B*T, cfg.Model.VocabSize)
			if c.labels > 0 {
				for j := range tg {
					tg[j] = -1
				}
				tg[T-1], tg[2*T-1] = int32(rng.IntN(c.labels)), int32(rng.IntN(c.labels))
			}
			mbs[i] = [2][]int32{in, tg}
		}
		lr := 0.01 / float64(step)
		l0 := accumStep(t, ms[0], opts[0], mbs, B, T, lr)
		l1 := accumStep(t, ms[1], opts[1], mbs, B, T, lr)
		if l0 != l1 {
			t.Fatalf("%s step %d: loss %v unfused, %v fused", name, step, l0, l1)
		}
		sameState(t, name, ms[0], ms[1], opts[0], opts[1])
		sameMoments(t, name, opts[0], opts[1])
	}
	for i := range ms {
		opts[i].Free()
		ms[i].Free()
	}
}

// sameMoments compares the moments as checkpoints hold them (8-bit ones
// decoded through their block scales), bit for bit.
func sameMoments(t *testing.T, what string, a, b *optim.Optimizer) {
	t.Helper()
	ma, err := a.Moments(0)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := b.Moments(0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ma {
		for j := range ma[i].Data {
			if math.Float32bits(ma[i].Data[j]) != math.Float32bits(mb[i].Data[j]) {
				t.Fatalf("%s: %s element %d: %v vs %v", what, ma[i].Name, j, ma[i].Data[j], mb[i].Data[j])
			}
		}
	}
}

// A fused step with accumulation updates once, in its last micro-batch:
// taking fewer micro-batches than train.grad_accum is an error naming the
// missing updates, never a silent partial step.
func TestFusedAccumNeedsEveryMicroBatch(t *testing.T) {
	cfg := leanConfig(true)
	ms, opts := fusedPair(t, func() gpu.Backend { return cpu.New(2) }, cfg, 3)
	m, o := ms[1], opts[1]
	in, tg := randomBatch(rand.New(rand.NewPCG(1, 2)), 16, cfg.Model.VocabSize)
	o.Begin(0.01, true)
	m.ZeroGrads()
	for range 2 {
		if err := m.SetBatch(in, tg, 2, 8); err != nil {
			t.Fatal(err)
		}
		if err := m.ForwardDeferred(1); err != nil {
			t.Fatal(err)
		}
		m.Backward()
	}
	if err := o.Finish(0.01); err == nil || !strings.Contains(err.Error(), "0 updates") {
		t.Fatalf("two of three micro-batches: %v, want 0 updates", err)
	}
}

// In a data-parallel job the fused update with accumulation reduces each
// group's summed gradients in the last micro-batch (overlapping the next
// block's backward), and under ZeRO-1 into their owners: two ranks of two
// micro-batches each follow one process of four, and ZeRO-1 writes the
// checkpoints of the unsharded job byte for byte.
func TestFusedAccumDataParallel(t *testing.T) {
	dir := t.TempDir()
	cfg := leanVariant(dpConfig(t, dir, true))
	cfg.Train.GradAccum, cfg.Train.Steps, cfg.Train.CheckpointEvery = 4, 4, 2
	ref := filepath.Join(dir, "one")
	if err := Pretrain(context.Background(), cfg, RunOptions{Out: ref}); err != nil {
		t.Fatal(err)
	}
	outs := runZeroPair(t, dir, cfg, true)
	for zero, out := range outs {
		closeTrajectory(t, fmt.Sprintf("fused accum 2 x 2 ranks, zero %d vs one process of 4", zero), readMetrics(t, ref), readMetrics(t, out))
	}
	sameButNorm(t, "fused accum with and without ZeRO-1", readMetrics(t, outs[config.ZeroOff]), readMetrics(t, outs[config.ZeroState]))
	sameCheckpoints(t, "fused accum with and without ZeRO-1", outs[config.ZeroOff], outs[config.ZeroState], cfg.Train.Steps)
}

// The fused engine with accumulation keeps the gradient arena (fp32, the
// unfused engine's) instead of the block scratch, and the prediction is
// what the CPU allocates.
func TestFusedAccumMemoryPrediction(t *testing.T) {
	cfg := config.Default()
	cfg.Model.VocabSize, cfg.Model.Hidden, cfg.Model.Intermediate, cfg.Model.Layers = 300, 64, 160, 3
	cfg.Train.GradClip = 0
	for _, compact := range []bool{false, true} {
		cfg.Compact.Enabled = compact
		unfused := cfg
		unfused.Train.GradAccum = 4
		base, err := PredictMemory(unfused, 4, 64, "cpu")
		if err != nil {
			t.Fatal(err)
		}
		fc := unfused
		fc.Train.FusedUpdate = true
		pred := predictedAsAllocated(t, fmt.Sprintf("compact %v", compact), fc)
		if pred.PeakAt[gpu.Grads] != base.PeakAt[gpu.Grads] {
			t.Errorf("compact %v: fused with accumulation keeps %d gradient bytes, unfused %d: want the same arena", compact, pred.PeakAt[gpu.Grads], base.PeakAt[gpu.Grads])
		}
		if math.Abs(float64(pred.PeakAll-base.PeakAll)) > float64(base.PeakAt[gpu.Workspace]) {
			t.Errorf("compact %v: fused with accumulation peaks at %d, unfused %d", compact, pred.PeakAll, base.PeakAll)
		}
	}
}

// With bf16 sums (train.grad_accum_state bf16) the gradient arena is half
// the fp32 one on CUDA, and the pass gradients take the fused update's
// scratch (one block's and one embedding-sized buffer), fused or not: the
// gradient bytes are exactly those two; and on the CPU the prediction is
// what is allocated.
func TestBF16SumsMemoryPrediction(t *testing.T) {
	cfg := config.Default()
	cfg.Model.VocabSize, cfg.Model.Hidden, cfg.Model.Intermediate, cfg.Model.Layers = 300, 64, 160, 3
	cfg.Train.GradClip, cfg.Train.GradAccum = 0, 4
	for _, compact := range []bool{false, true} {
		for _, fused := range []bool{false, true} {
			c := cfg
			c.Compact.Enabled, c.Train.FusedUpdate = compact, fused
			what := fmt.Sprintf("compact %v fused %v", compact, fused)
			arena, err := PredictMemory(c, 4, 64, "cuda")
			if err != nil {
				t.Fatal(err)
			}
			scratchCfg := c
			scratchCfg.Train.FusedUpdate, scratchCfg.Train.GradAccum = true, 1
			scratch, err := PredictMemory(scratchCfg, 4, 64, "cuda")
			if err != nil {
				t.Fatal(err)
			}
			bc := c
			bc.Train.GradAccumState = config.StateBF16
			got, err := PredictMemory(bc, 4, 64, "cuda")
			if err != nil {
				t.Fatal(err)
			}
			if want := arena.PeakAt[gpu.Grads]/2 + scratch.PeakAt[gpu.Grads]; got.PeakAt[gpu.Grads] != want {
				t.Errorf("%s: bf16 sums take %d gradient bytes, want %d (half the fp32 arena's %d plus the scratch's %d)",
					what, got.PeakAt[gpu.Grads], want, arena.PeakAt[gpu.Grads], scratch.PeakAt[gpu.Grads])
			}
			predictedAsAllocated(t, what, bc)
		}
	}
}
