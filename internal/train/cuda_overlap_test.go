//go:build linux && (amd64 || arm64)

package train

import (
	"math/rand/v2"
	"testing"

	"github.com/compact-llm/compact/internal/dist"
	"github.com/compact-llm/compact/internal/gpu/cuda"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/optim"
)

// The pipelined fused update on the GPU with a one-rank NCCL job: every
// group's all-reduce is issued on the communicator's side stream (ordered by
// events after the group's backward, and before its update on the compute
// stream), the blocks alternate between two gradient buffers and each group
// is updated one hook late. A one-rank all-reduce leaves the gradients as
// they are, so the weights must equal, to the bit, those of the synchronous
// fused update on the same device: a missing event (an update reading a
// buffer before it is cleared or written) or a mis-assigned buffer shows.
// It skips without a GPU or without libnccl.so.2.
func TestCUDANCCLPipelinedFusedStep(t *testing.T) {
	g, err := cuda.New(0)
	if err != nil {
		t.Skipf("no usable CUDA device: %v", err)
	}
	defer g.Close()
	port, err := dist.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c, err := dist.Join(dist.Env{Rank: 0, World: 1, Addr: "127.0.0.1", Port: port}, g, dist.Options{})
	if err != nil {
		t.Skipf("NCCL: %v", err)
	}
	defer c.Close()
	for _, lean := range []bool{false, true} {
		cfg := leanConfig(true)
		if lean {
			cfg = leanVariant(cfg)
		}
		cfg.Model.Hidden, cfg.Model.Intermediate, cfg.Model.Heads, cfg.Model.KVHeads, cfg.Model.Layers = 128, 344, 2, 1, 3
		cfg.Train.GradClip, cfg.Train.GradAccum, cfg.Train.FusedUpdate = 0, 1, true
		var ms [2]*model.Model
		var opts [2]*optim.Optimizer
		for i, world := range []int{1, 2} { // world 2 only to build the pipelined model
			m, err := newRankModel(g, cfg, optim.Shard{}, world)
			if err != nil {
				t.Fatal(err)
			}
			if m.Opts.PipelinedUpdate != (i == 1) {
				t.Fatalf("model %d: pipelined %v", i, m.Opts.PipelinedUpdate)
			}
			if err := m.Init(3); err != nil {
				t.Fatal(err)
			}
			o, err := optim.New(m, cfg.OptimizerConfig())
			if err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				o.SetExchange(&dataParallel{comm: c, be: g})
			}
			ms[i], opts[i] = m, o
		}
		rng := rand.New(rand.NewPCG(7, 8))
		B, T := 2, 16
		for step := 1; step <= 3; step++ {
			in, tg := randomBatch(rng, B*T, cfg.Model.VocabSize)
			l0, g0 := trainStep(t, ms[0], opts[0], in, tg, B, T, 0.01)
			l1, g1 := trainStep(t, ms[1], opts[1], in, tg, B, T, 0.01)
			if l0 != l1 || g0 != g1 {
				t.Fatalf("lean %v step %d: loss %v / %v, gradient norm %v / %v (synchronous / pipelined)", lean, step, l0, l1, g0, g1)
			}
		}
		for i, p := range ms[0].Params {
			q := ms[1].Params[i]
			a, b := mustRead(t, ms[0], p, p.W), mustRead(t, ms[1], q, q.W)
			for j := range a {
				if a[j] != b[j] {
					t.Fatalf("lean %v: %s element %d: synchronous %v, pipelined %v", lean, p.Name, j, a[j], b[j])
				}
			}
		}
		for i := range ms {
			opts[i].Free()
			ms[i].Free()
		}
	}
}
