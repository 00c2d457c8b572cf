//go:build linux && (amd64 || arm64)

package train

import (
	"math"
	"testing"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu/cuda"
	"github.com/compact-llm/compact/internal/optim"
)

// graphRun is what one run of steps leaves behind: the loss of every step
// and every param's weights at the end.
type graphRun struct {
	losses  []float64
	weights [][]float32
	runs    [3]int // eager, captured, replayed
}

// runSteps takes n Stepper steps of cfg on a fresh CUDA backend, with the
// learning rate of sched (warmup then decay: it changes every step).
func runSteps(t *testing.T, cfg config.Config, sched optim.Schedule, n int) graphRun {
	t.Helper()
	be, err := cuda.New(0)
	if err != nil {
		t.Skipf("no usable CUDA device: %v", err)
	}
	defer be.Close()
	s, err := NewStepper(be, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.t.sched = sched
	var r graphRun
	for i := 0; i < n; i++ {
		if err := s.Step(); err != nil {
			t.Fatal(err)
		}
		l, err := s.Loss() // between steps: waits, but records nothing
		if err != nil {
			t.Fatal(err)
		}
		r.losses = append(r.losses, l)
	}
	for _, p := range s.t.model.Params {
		r.weights = append(r.weights, mustRead(t, s.t.model, p, p.W))
	}
	r.runs[0], r.runs[1], r.runs[2] = s.GraphRuns()
	return r
}

// Graph steps run the kernels of the eager steps in the same order with the
// same arguments, so two runs from the same seed agree bit for bit: every
// loss and every weight. The configs cover the master-free lean paths,
// the fused update, gradient accumulation (with bf16 sums too), a
// projection epoch change every 3 steps (steps of another structure) and a
// learning rate that changes every step (patched kernel arguments, GEMMs
// with device scalars). A GPU whose eager runs differ from each other
// (atomics) is reported, and the graph run is then held to the bf16
// rounding of two eager runs. The fp32-master path takes no graphs
// (stepGraphs: its replayed update drifted from the eager one).
func TestCUDAGraphStepsMatchEager(t *testing.T) {
	for _, c := range []struct {
		name        string
		lean, fused bool
		accum       int
		sums        string
	}{{"bf16_sr-bf16", true, false, 2, ""}, {"bf16_sr-bf16-fused", true, true, 1, ""},
		{"bf16_sr-bf16-fused bf16 sums", true, true, 2, config.StateBF16}} {
		t.Run(c.name, func(t *testing.T) {
			cfg := leanConfig(true)
			if c.lean {
				cfg = leanVariant(cfg)
			}
			if c.sums != "" {
				cfg.Train.GradAccumState = c.sums // the sums' rounding keys change every step (patched arguments)
			}
			cfg.Model.Hidden, cfg.Model.Intermediate, cfg.Model.Heads, cfg.Model.KVHeads = 128, 344, 2, 1
			cfg.Train.Device, cfg.Train.MicroBatch, cfg.Train.SeqLen, cfg.Train.GradAccum = "cuda", 4, 32, c.accum
			cfg.Train.FusedUpdate = c.fused
			if c.fused {
				cfg.Train.GradClip = 0
			}
			cfg.Compact.UpdateGap = 3
			sched := optim.Schedule{LR: 1e-3, Warmup: 4, Total: 12, MinRatio: 0.1}
			const n = 12
			cfg.Train.CUDAGraph = config.GraphOff
			eager := runSteps(t, cfg, sched, n)
			again := runSteps(t, cfg, sched, n)
			cfg.Train.CUDAGraph = config.GraphOn
			graph := runSteps(t, cfg, sched, n)
			if graph.runs[2] < n/3 {
				t.Fatalf("graph run: %d eager, %d captured, %d replayed steps of %d: want at least a third replayed", graph.runs[0], graph.runs[1], graph.runs[2], n)
			}
			if eager.runs[1]+eager.runs[2] != 0 {
				t.Fatalf("cuda_graph off captured or replayed steps: %v", eager.runs)
			}
			exact := sameGraphRun(eager, again, 0)
			if !exact {
				t.Logf("two eager runs differ (non-deterministic kernels): comparing within bf16 rounding")
			}
			tol := 0.0
			if !exact {
				tol = math.Ldexp(1, -6)
			}
			for i := range eager.losses {
				if d := math.Abs(eager.losses[i] - graph.losses[i]); d > tol*math.Abs(eager.losses[i]) {
					t.Fatalf("step %d: loss %v eager, %v with graphs", i+1, eager.losses[i], graph.losses[i])
				}
			}
			if !sameGraphRun(eager, graph, tol) {
				t.Fatalf("weights after %d steps differ between eager and graph steps (runs %v)", n, graph.runs)
			}
		})
	}
}

// sameGraphRun reports whether a and b have the same weights, within relative
// tol (0: bit for bit).
func sameGraphRun(a, b graphRun, tol float64) bool {
	for i := range a.weights {
		for j, x := range a.weights[i] {
			y := b.weights[i][j]
			if tol == 0 {
				if math.Float32bits(x) != math.Float32bits(y) {
					return false
				}
				continue
			}
			if math.Abs(float64(x-y)) > 1e-7+tol*math.Max(math.Abs(float64(x)), math.Abs(float64(y))) {
				return false
			}
		}
	}
	if tol == 0 {
		for i := range a.losses {
			if math.Float64bits(a.losses[i]) != math.Float64bits(b.losses[i]) {
				return false
			}
		}
	}
	return true
}
