package train

import (
	"errors"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
)

// fakeGrapher is the CPU backend with the step-graph calls: it checks how
// the trainer brackets steps and counts what would wait for the device in
// the middle of a recorded step (which would make the step run eagerly).
type fakeGrapher struct {
	gpu.Backend
	open       bool
	begun      int
	replays    []bool
	waitsInRec []string
}

func (f *fakeGrapher) GraphSupport() error { return nil }

func (f *fakeGrapher) BeginGraphStep() error {
	if f.open {
		return errors.New("BeginGraphStep inside a recorded step")
	}
	f.open, f.begun = true, f.begun+1
	return nil
}

func (f *fakeGrapher) EndGraphStep(replay bool) (gpu.GraphRun, error) {
	if !f.open {
		return gpu.GraphEager, errors.New("EndGraphStep without BeginGraphStep")
	}
	f.open = false
	f.replays = append(f.replays, replay)
	if replay {
		return gpu.GraphReplayed, nil
	}
	return gpu.GraphEager, nil
}

func (f *fakeGrapher) wait(what string) {
	if f.open && f.begun > 1 { // the first step allocates activations and uploads constants
		f.waitsInRec = append(f.waitsInRec, what)
	}
}

func (f *fakeGrapher) Sync() error { f.wait("Sync"); return f.Backend.Sync() }
func (f *fakeGrapher) Download(t *gpu.Tensor) ([]float32, error) {
	f.wait("Download " + t.String())
	return f.Backend.Download(t)
}
func (f *fakeGrapher) DownloadF64(t *gpu.Tensor) ([]float64, error) {
	f.wait("DownloadF64 " + t.String())
	return f.Backend.DownloadF64(t)
}
func (f *fakeGrapher) Upload(t *gpu.Tensor, src []float32) error {
	f.wait("Upload " + t.String()) // synchronous on CUDA; UploadInt32 is the staged one
	return f.Backend.Upload(t, src)
}

// graphConfig is a small CompAct run with master-free weights (graphs need
// them) and fp32 moments.
func graphConfig() config.Config {
	cfg := leanConfig(true)
	cfg.Train.Weights = config.WeightsBF16SR
	cfg.Train.MicroBatch, cfg.Train.SeqLen, cfg.Train.GradClip = 2, 8, 0
	cfg.Compact.UpdateGap = 2
	return cfg
}

// Every step that does not log is recorded whole, and none of them after
// the first waits for the device in the middle (which would run it
// eagerly): for master-free weights with fp32 and bf16 moments, the fused
// update, gradient accumulation and projection epoch changes. A step that
// reads its loss is not recorded.
func TestGraphStepsAreRecordedWhole(t *testing.T) {
	for _, c := range []struct {
		name        string
		lean, fused bool
		accum       int
	}{{"bf16_sr", false, false, 1}, {"lean-accum", true, false, 2}, {"lean-fused", true, true, 1}} {
		cfg := graphConfig()
		if c.lean {
			cfg = leanVariant(cfg)
		}
		cfg.Train.FusedUpdate, cfg.Train.GradAccum, cfg.Train.CUDAGraph = c.fused, c.accum, config.GraphOn
		f := &fakeGrapher{Backend: cpu.New(1)}
		s, err := NewStepper(f, cfg)
		if err != nil {
			t.Fatal(err)
		}
		const n = 5
		for i := 0; i < n; i++ {
			if err := s.Step(); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := s.t.step(true); err != nil { // a logging step
			t.Fatal(err)
		}
		s.Close()
		if f.begun != n || len(f.replays) != n || f.open {
			t.Fatalf("%s: %d steps begun, %d ended (open %v), want %d: the logging step is not recorded", c.name, f.begun, len(f.replays), f.open, n)
		}
		if len(f.waitsInRec) > 0 {
			t.Fatalf("%s: recorded steps wait for the device: %v", c.name, f.waitsInRec)
		}
		if eager, _, replayed := s.GraphRuns(); replayed != n || eager != 1 {
			t.Fatalf("%s: GraphRuns eager %d replayed %d, want 1 and %d", c.name, eager, replayed, n)
		}
	}
}

// failingBatches fails the next read.
type failingBatches struct{ sameBatch }

func (failingBatches) Next() ([]int32, []int32, error) { return nil, nil, errors.New("disk gone") }

// A step that fails is still ended, with its recorded work queued eagerly
// (replay false), and the error is the step's.
func TestGraphStepFailureEndsTheRecording(t *testing.T) {
	cfg := graphConfig()
	cfg.Train.CUDAGraph = config.GraphOn
	f := &fakeGrapher{Backend: cpu.New(1)}
	s, err := NewStepper(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.t.train = failingBatches{}
	if err := s.Step(); err == nil || !strings.Contains(err.Error(), "disk gone") {
		t.Fatalf("step error %v, want the loader's", err)
	}
	if f.open || len(f.replays) != 1 || f.replays[0] {
		t.Fatalf("failed step: open %v, ended with replay %v: want ended once without replay", f.open, f.replays)
	}
}

// train.cuda_graph: off never records, auto records only where the backend
// can, on refuses a backend without graphs as a usage error naming the key,
// and a bad value is refused by Validate.
func TestCUDAGraphModes(t *testing.T) {
	cfg := graphConfig()
	for _, mode := range []string{config.GraphOff, config.GraphAuto} {
		cfg.Train.CUDAGraph = mode
		if g, err := stepGraphs(cfg, cpu.New(1), false); g != nil || err != nil {
			t.Fatalf("%s on the CPU backend: %v, %v; want no grapher and no error", mode, g, err)
		}
	}
	cfg.Train.CUDAGraph = config.GraphOn
	if _, err := stepGraphs(cfg, cpu.New(1), false); err == nil || !config.IsUsage(err) || !strings.Contains(err.Error(), "train.cuda_graph") {
		t.Fatalf("on with the CPU backend: %v, want a usage error naming train.cuda_graph", err)
	}
	f := &fakeGrapher{Backend: cpu.New(1)}
	if _, err := stepGraphs(cfg, f, true); err == nil || !strings.Contains(err.Error(), "data parallel") {
		t.Fatalf("on with data parallel: %v, want an error saying data parallel runs eagerly", err)
	}
	cfg.Train.CUDAGraph = config.GraphOff
	if g, _ := stepGraphs(cfg, f, false); g != nil {
		t.Fatal("off returned a grapher")
	}
	// Graphs only where a replay is known to give the eager bits
	// (master-free weights): auto falls back to eager steps, on refuses.
	cfg.Train.CUDAGraph = config.GraphAuto
	for _, c := range []struct {
		weights string
		want    bool
	}{{config.WeightsBF16SR, true}, {config.WeightsMaster, false}} {
		cfg.Train.Weights = c.weights
		if g, err := stepGraphs(cfg, f, false); err != nil || (g != nil) != c.want {
			t.Fatalf("auto with train.weights %s: grapher %v, err %v; want a grapher %v", c.weights, g != nil, err, c.want)
		}
	}
	cfg.Train.CUDAGraph = config.GraphOn
	if _, err := stepGraphs(cfg, f, false); err == nil || !config.IsUsage(err) || !strings.Contains(err.Error(), "master-free") {
		t.Fatalf("on with master weights: %v; want a usage error saying graphs need master-free weights", err)
	}
	cfg.Train.CUDAGraph = "sometimes"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "train.cuda_graph") {
		t.Fatalf("cuda_graph sometimes: %v, want an error naming train.cuda_graph", err)
	}
	if config.Default().Train.CUDAGraph != config.GraphAuto {
		t.Fatalf("default train.cuda_graph %q, want auto", config.Default().Train.CUDAGraph)
	}
}
