package train

import (
	"testing"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/optim"
)

// masterCPU is the CPU backend keeping an fp32 master copy, as CUDA does:
// its Low weights are float32 too, so the master rounds into them exactly,
// but every master code path (the sharded one included) runs.
type masterCPU struct{ *cpu.Backend[float32] }

func (masterCPU) MasterWeights() bool { return true }

// withMasterCPU runs f with every trainer opening a masterCPU.
func withMasterCPU(t *testing.T, f func()) {
	t.Helper()
	testBackend = func() gpu.Backend { return masterCPU{cpu.New(1)} }
	defer func() { testBackend = nil }()
	f()
}

// Under ZeRO-1 with train.weights master each rank keeps the fp32 master of
// its share only, and the run is the unsharded one: the same metrics (the
// norm to rounding) and byte-identical checkpoints, whose weights are the
// masters gathered from their owners. Full rank and CompAct, fused and
// unfused.
func TestZeroShardsMaster(t *testing.T) {
	withMasterCPU(t, func() {
		for _, c := range []zeroCase{{false, false, config.WeightsMaster, config.StateFP32}, {false, true, config.WeightsMaster, config.StateFP32}, {true, false, config.WeightsMaster, config.StateFP32}} {
			dir := t.TempDir()
			cfg := c.apply(dpConfig(t, dir, c.compact))
			cfg.Train.CheckpointEvery = 2
			outs := runZeroPair(t, dir, cfg, c.fused)
			sameButNorm(t, c.String(), readMetrics(t, outs[config.ZeroOff]), readMetrics(t, outs[config.ZeroState]))
			sameCheckpoints(t, c.String()+" with and without a sharded master", outs[config.ZeroOff], outs[config.ZeroState], cfg.Train.Steps)
		}
	})
}

// Each rank of a ZeRO-1 job allocates the master of its own weight range
// only: the shares add up to the whole master, and the per-GPU prediction
// (memreport --gpus N) carries the largest share.
func TestZeroMasterMemory(t *testing.T) {
	cfg := config.Default()
	cfg.Model.VocabSize, cfg.Model.Hidden, cfg.Model.Intermediate, cfg.Model.Layers = 300, 64, 160, 4
	cfg.Compact.Enabled, cfg.Train.Weights, cfg.Train.GradClip = false, config.WeightsMaster, 0
	whole := int64(0)
	for _, world := range []int{1, 2, 4} {
		var sum, largest int64
		for r := range world {
			be := masterCPU{cpu.New(1)}
			sh := cfg.Shard(r, world)
			m, err := newRankModel(be, cfg, sh, world)
			if err != nil {
				t.Fatal(err)
			}
			oc := cfg.OptimizerConfig()
			oc.Shard = sh
			if _, err := optim.New(m, oc); err != nil {
				t.Fatal(err)
			}
			n := be.Memory().Snapshot().Current[gpu.Master]
			sum, largest = sum+n, max(largest, n)
		}
		if world == 1 {
			whole = sum
		}
		if sum != whole || largest >= whole && world > 1 {
			t.Errorf("%d ranks: masters of %d bytes in all (largest %d), one process keeps %d", world, sum, largest, whole)
		}
		p, _, err := PredictRankMemory(cfg, 4, 64, "cuda", world)
		if err != nil {
			t.Fatal(err)
		}
		// The metering backend takes 4 bytes an fp32 element as the CPU does.
		if got := p.PeakAt[gpu.Master]; got != largest {
			t.Errorf("%d ranks: per-GPU master predicted %d bytes, the largest rank allocates %d", world, got, largest)
		}
	}
}

// A checkpoint of 2 ranks with sharded masters resumes on 1 process (which
// keeps the whole master) and on 2 ranks, along the uninterrupted run.
func TestZeroMasterCheckpointResumes(t *testing.T) {
	withMasterCPU(t, func() {
		for _, c := range []zeroCase{{false, false, config.WeightsMaster, config.StateFP32}, {false, true, config.WeightsMaster, config.StateFP32}} {
			checkZeroResumes(t, c)
		}
	})
}
