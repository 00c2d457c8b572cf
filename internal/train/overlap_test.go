package train

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/optim"
)

// A fused update whose reductions overlap the backward (each group's issued
// on the comm's goroutine, updated one hook later) takes the very steps of
// the synchronous one: the same metrics and checkpoints to the bit, with
// and without ZeRO-1, full rank and CompAct, fp32 and lean state.
func TestOverlapMatchesSynchronous(t *testing.T) {
	cases := []zeroCase{{true, true, config.WeightsBF16SR, config.StateFP32}, {true, true, config.WeightsBF16SR, config.StateBF16}, {false, true, config.WeightsMaster, config.StateFP32}}
	for _, c := range cases {
		for _, zero := range []int{config.ZeroOff, config.ZeroState} {
			dir := t.TempDir()
			cfg := c.apply(dpConfig(t, dir, c.compact))
			cfg.Train.CheckpointEvery = 4
			outs := map[bool]string{}
			for _, overlap := range []bool{false, true} {
				rc := perRank(cfg, 2, true)
				rc.Train.Zero, rc.Train.OverlapComm = zero, overlap
				outs[overlap] = filepath.Join(dir, fmt.Sprintf("overlap-%v", overlap))
				runRanks(t, 2, rc, outs[overlap], false)
			}
			what := fmt.Sprintf("%s zero %d", c, zero)
			off, on := readMetrics(t, outs[false]), readMetrics(t, outs[true])
			sameTrajectory(t, off, on)
			if a, b := *off[len(off)-1].Comm, *on[len(on)-1].Comm; a != b {
				t.Errorf("%s: collectives %+v synchronous, %+v overlapped", what, a, b)
			}
			sameCheckpoints(t, what+" with and without overlap", outs[false], outs[true], cfg.Train.Steps)
		}
	}
}

// Overlap keeps a second block gradient buffer, only in a job of several
// ranks with a fused update: what the CPU allocates and what memreport
// --gpus N predicts both grow by exactly that buffer.
func TestOverlapMemory(t *testing.T) {
	cfg := config.Default()
	cfg.Model.VocabSize, cfg.Model.Hidden, cfg.Model.Intermediate, cfg.Model.Layers = 300, 64, 160, 4
	cfg.Train.FusedUpdate, cfg.Train.GradClip, cfg.Train.Zero = true, 0, config.ZeroOff
	grads := func(overlap bool, world int) (alloc, pred int64) {
		cfg := cfg
		cfg.Train.OverlapComm = overlap
		be := cpu.New(1)
		m, err := newRankModel(be, cfg, optim.Shard{}, world)
		if err != nil {
			t.Fatal(err)
		}
		if m.Opts.PipelinedUpdate != (overlap && world > 1) {
			t.Fatalf("overlap %v on %d ranks: pipelined %v", overlap, world, m.Opts.PipelinedUpdate)
		}
		p, _, err := PredictRankMemory(cfg, 4, 64, "cpu", world)
		if err != nil {
			t.Fatal(err)
		}
		return be.Memory().Snapshot().Current[gpu.Grads], p.PeakAt[gpu.Grads]
	}
	syncA, syncP := grads(false, 2)
	ovA, ovP := grads(true, 2)
	oneA, _ := grads(true, 1)
	// The block buffer holds one block's gradients (the largest group).
	block := int64(0)
	{
		m, err := NewModel(cpu.New(1), cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m.Params {
			if p.Layer == 0 {
				block += 4 * int64((p.Grad.Len()+127)/128*128)
			}
		}
	}
	if ovA-syncA != block || ovP-syncP != block || oneA != syncA {
		t.Errorf("gradient buffers: synchronous %d (predicted %d), overlapped %d (predicted %d), one rank %d; want one more block of %d bytes when overlapped on 2 ranks", syncA, syncP, ovA, ovP, oneA, block)
	}
}
