package train

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/optim"
)

// zeroCase is one optimizer setup the ZeRO-1 tests cover.
type zeroCase struct {
	compact, fused bool
	weights, state string
}

func (c zeroCase) String() string {
	return fmt.Sprintf("compact %v fused %v weights %s state %s", c.compact, c.fused, c.weights, c.state)
}

func (c zeroCase) apply(cfg config.Config) config.Config {
	cfg.Compact.Enabled = c.compact
	cfg.Train.Weights, cfg.Train.OptimizerState = c.weights, c.state
	return cfg
}

var zeroCases = []zeroCase{
	{true, false, config.WeightsBF16SR, config.StateFP32}, {true, true, config.WeightsBF16SR, config.StateFP32},
	{true, false, config.WeightsMaster, config.StateFP32}, {true, true, config.WeightsBF16SR, config.StateBF16},
	{false, false, config.WeightsMaster, config.StateFP32}, {false, true, config.WeightsMaster, config.StateFP32},
	{false, false, config.WeightsBF16SR, config.StateBF16},
	{true, true, config.WeightsBF16SR, config.StateInt8}, {false, false, config.WeightsBF16SR, config.StateInt8},
}

// Two ranks with ZeRO-1 take the very steps of two ranks without it (the
// reduce-scatter forms each sum as the all-reduce does, each owned param
// gets the unsharded update, the others arrive by all-gather): the same
// metrics to the bit, but for the gradient norm, whose square ZeRO-1 adds up
// from the ranks' parts (float rounding), and byte-identical checkpoints,
// which hold
// every moment although no rank does. Both follow one process with twice
// the accumulation. A checkpoint every step makes every rank compare its
// weights with the others' after each step (checkSame). Rank 0.3 (10 of
// 32, 19 of 64) is stored padded to 8 where the weights are bf16, as on
// CUDA: the gathered moments leave the engine at their logical shape.
func TestZeroMatchesUnsharded(t *testing.T) {
	for _, c := range zeroCases {
		dir := t.TempDir()
		cfg := c.apply(dpConfig(t, dir, c.compact))
		cfg.Train.CheckpointEvery = 1
		cfg.Compact.Rank = 0.3
		ref := filepath.Join(dir, "one")
		if err := Pretrain(context.Background(), cfg, RunOptions{Out: ref}); err != nil {
			t.Fatal(err)
		}
		outs := runZeroPair(t, dir, cfg, c.fused)
		for zero, out := range outs {
			closeTrajectory(t, fmt.Sprintf("%s zero %d vs one process", c, zero), readMetrics(t, ref), readMetrics(t, out))
		}
		off, on := readMetrics(t, outs[config.ZeroOff]), readMetrics(t, outs[config.ZeroState])
		sameButNorm(t, c.String(), off, on)
		zc, oc := on[len(on)-1].Comm, off[len(off)-1].Comm
		if zc.AllGather == 0 || zc.ReduceScatter == 0 || zc.Total != 0 {
			t.Errorf("%s: ZeRO-1 moved %+v: want a reduce-scatter and an all-gather, no all-reduce", c, *zc)
		}
		if oc.AllGather != 0 || oc.ReduceScatter != 0 || zc.ReduceScatter != oc.Total {
			t.Errorf("%s: without ZeRO-1 %+v, with %+v: want the same gradient bytes, all-reduced", c, *oc, *zc)
		}
		sameCheckpoints(t, c.String()+" with and without ZeRO-1", outs[config.ZeroOff], outs[config.ZeroState], cfg.Train.Steps)
	}
}

// sameButNorm is sameTrajectory with the gradient norms equal to float
// rounding only.
func sameButNorm(t *testing.T, what string, a, b []Metric) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d metric lines vs %d", what, len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		if math.Abs(x.GradNorm-y.GradNorm) > 1e-6*math.Max(1, math.Abs(x.GradNorm)) {
			t.Fatalf("%s: line %d: gradient norm %v vs %v", what, i, x.GradNorm, y.GradNorm)
		}
		b[i].GradNorm = x.GradNorm
	}
	sameTrajectory(t, a, b)
}

// sameCheckpoints checks that runs a and b wrote byte-identical model and
// optimizer files at step.
func sameCheckpoints(t *testing.T, what, a, b string, step int) {
	t.Helper()
	for _, f := range []string{checkpoint.ModelFile, checkpoint.OptimizerFile} {
		x := readFile(t, filepath.Join(checkpoint.StepDir(filepath.Join(a, "checkpoints"), step), f))
		y := readFile(t, filepath.Join(checkpoint.StepDir(filepath.Join(b, "checkpoints"), step), f))
		if !bytes.Equal(x, y) {
			t.Errorf("%s: %s differs", what, f)
		}
	}
}

// runZeroPair trains cfg on 2 ranks (fused or not) with train.zero 0 and 1
// under dir and returns the two run directories, by zero.
func runZeroPair(t *testing.T, dir string, cfg config.Config, fused bool) map[int]string {
	t.Helper()
	outs := map[int]string{}
	for _, zero := range []int{config.ZeroOff, config.ZeroState} {
		zc := perRank(cfg, 2, fused)
		zc.Train.Zero = zero
		outs[zero] = filepath.Join(dir, fmt.Sprintf("zero%d", zero))
		runRanks(t, 2, zc, outs[zero], false)
	}
	return outs
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A ZeRO-1 checkpoint (moments gathered into the single-process format)
// resumes on one process and on two ranks with ZeRO-1, along the
// uninterrupted trajectory.
func TestZeroCheckpointResumes(t *testing.T) {
	for _, c := range []zeroCase{zeroCases[3], zeroCases[4]} {
		checkZeroResumes(t, c)
	}
}

// checkZeroResumes runs case c on 2 ranks with ZeRO-1 and resumes its
// step-4 checkpoint on 1 process and on 2 ranks.
func checkZeroResumes(t *testing.T, c zeroCase) {
	t.Helper()
	dir := t.TempDir()
	cfg := c.apply(dpConfig(t, dir, c.compact))
	full := filepath.Join(dir, "full")
	runRanks(t, 2, perRank(cfg, 2, c.fused), full, false)
	for _, world := range []int{1, 2} {
		cut := filepath.Join(dir, fmt.Sprintf("cut-%d", world))
		if err := os.CopyFS(cut, os.DirFS(full)); err != nil {
			t.Fatal(err)
		}
		for _, s := range []int{8, 12} { // resume from step 4
			os.RemoveAll(checkpoint.StepDir(filepath.Join(cut, "checkpoints"), s))
		}
		if world == 1 {
			if err := Pretrain(context.Background(), cfg, RunOptions{Out: cut, Resume: true}); err != nil {
				t.Fatal(err)
			}
		} else {
			runRanks(t, 2, perRank(cfg, 2, c.fused), cut, true)
		}
		closeTrajectory(t, fmt.Sprintf("%s: resumed on %d", c, world), readMetrics(t, full), readMetrics(t, cut))
	}
}

// Each rank allocates the moments of its share only: the shares add up to
// the whole state, the largest is within one param of 1/N of it, and the
// metered prediction of the largest rank (what memreport --gpus N reports)
// equals what the CPU backend allocates for that rank.
func TestZeroShardsOptimizerMemory(t *testing.T) {
	cfg := config.Default()
	cfg.Model.VocabSize, cfg.Model.Hidden, cfg.Model.Intermediate, cfg.Model.Layers = 300, 64, 160, 4
	for _, c := range zeroCases {
		cfg := c.apply(cfg)
		cfg.Train.FusedUpdate, cfg.Train.GradClip = c.fused, 0
		whole, largestParam := int64(0), int64(0)
		for _, world := range []int{1, 2, 4} {
			var sum, largest, peak int64
			for r := range world {
				be := cpu.New(1)
				oc := cfg.OptimizerConfig()
				oc.Shard = cfg.Shard(r, world)
				m, err := newRankModel(be, cfg, oc.Shard, world)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := optim.New(m, oc); err != nil {
					t.Fatal(err)
				}
				if world == 1 {
					for _, p := range m.Params {
						largestParam = max(largestParam, 2*4*int64(p.Grad.Len()))
					}
				}
				if err := m.Prepare(4, 64); err != nil {
					t.Fatal(err)
				}
				state := be.Memory().Snapshot().Current[gpu.Optimizer] // the two fp32 moments
				sum += state
				largest = max(largest, state)
				pred, err := predictMemory(cfg, 4, 64, "cpu", oc.Shard, world)
				if err != nil {
					t.Fatal(err)
				}
				got := be.Memory().Snapshot()
				if got.PeakAll != pred.PeakAll || got.Peak != pred.PeakAt {
					t.Errorf("%s: rank %d of %d: predicted %v, allocated %v", c, r, world, pred.PeakAt, got.Peak)
				}
				peak = max(peak, got.PeakAll)
			}
			if world == 1 {
				whole = sum
			}
			if sum != whole {
				t.Errorf("%s: %d ranks hold %d bytes of moments in all, one holds %d", c, world, sum, whole)
			}
			if bound := whole/int64(world) + largestParam; largest > bound {
				t.Errorf("%s: the largest of %d shares is %d bytes, more than 1/%d of %d plus the largest param", c, world, largest, world, whole)
			}
			p, _, err := PredictRankMemory(cfg, 4, 64, "cpu", world)
			if err != nil {
				t.Fatal(err)
			}
			if p.PeakAll != peak {
				t.Errorf("%s: %d ranks: per-GPU prediction %d bytes, the largest rank allocates %d", c, world, p.PeakAll, peak)
			}
			t.Logf("%s: %d ranks: largest share %d of %d bytes of moments; per-GPU optimizer prediction %d", c, world, largest, whole, p.PeakAt[gpu.Optimizer])
		}
	}
}
