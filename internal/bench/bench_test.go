package bench

import (
	"math"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/train"
)

// benchConfig is a small model with every matmul shape distinct (grouped
// query attention, an untied head), so that a miscounted term shows.
func benchConfig() config.Config {
	cfg := config.Default()
	cfg.Model.VocabSize, cfg.Model.Hidden, cfg.Model.Intermediate = 300, 48, 112
	cfg.Model.Layers, cfg.Model.Heads, cfg.Model.KVHeads, cfg.Model.MaxSeqLen = 3, 6, 2, 32
	cfg.Model.TieEmbeddings = false
	cfg.Train.SeqLen, cfg.Train.MicroBatch, cfg.Train.GradAccum = 32, 2, 3
	cfg.Train.Device, cfg.Train.Threads = "cpu", 2
	return cfg
}

// handFLOPs counts one token's training FLOPs from the shapes, written out
// layer by layer: 6 per weight of every matmul (2 forward, 4 backward; the
// embedding lookup is free) and causal attention's QK^T and AV, 2*T*C each
// over the full square, half of it causal, times 3 for backward.
func handFLOPs(cfg config.Config) float64 {
	m, T := cfg.Model, float64(cfg.Train.SeqLen)
	C, F := float64(m.Hidden), float64(m.Intermediate)
	kv := C / float64(m.Heads) * float64(m.KVHeads)
	var weights float64
	for range m.Layers {
		weights += C * C  // q_proj
		weights += C * kv // k_proj
		weights += C * kv // v_proj
		weights += C * C  // o_proj
		weights += C * F  // gate_proj
		weights += C * F  // up_proj
		weights += F * C  // down_proj
	}
	weights += float64(m.VocabSize) * C // lm_head
	attention := float64(m.Layers) * 3 * (2*T*C + 2*T*C) / 2
	return 6*weights + attention
}

// The reported rates are the arithmetic of the measured time: tokens per
// step from the batch, tok/s from the step time, TFLOP/s from tok/s and the
// hand count of FLOPs, the parameter count the model's own.
func TestBenchArithmetic(t *testing.T) {
	for _, compact := range []bool{false, true} {
		cfg := benchConfig()
		cfg.Compact.Enabled = compact
		be := cpu.New(2)
		const steps = 2
		r, err := run(be, cfg, 1, steps, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := 2 * 32 * 3; r.Tokens != want {
			t.Errorf("tokens per step %d, want %d", r.Tokens, want)
		}
		if got := r.TokPerS * r.StepMs / 1e3; math.Abs(got-float64(r.Tokens)) > 1e-6*float64(r.Tokens) {
			t.Errorf("tok/s %g x step %g ms = %g tokens, want %d", r.TokPerS, r.StepMs, got, r.Tokens)
		}
		want := r.TokPerS * handFLOPs(cfg) / 1e12
		if math.Abs(r.TFLOPS-want) > 1e-9*want {
			t.Errorf("compact %v: %g TFLOP/s, the hand count gives %g", compact, r.TFLOPS, want)
		}
		m, err := train.NewModel(cpu.New(1), cfg)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, p := range m.Params {
			n += int64(p.W.Len())
		}
		m.Free()
		if r.Params != n {
			t.Errorf("params %d, the model has %d weights", r.Params, n)
		}
		if r.PeakBytes <= 4*n || r.PeakBytes != be.Memory().Snapshot().PeakAll {
			t.Errorf("peak %d bytes: want the backend's peak, above the %d bytes of fp32 weights", r.PeakBytes, 4*n)
		}
		// An untrained model predicts about uniformly: loss near ln(vocab).
		if math.Abs(r.Loss-math.Log(300)) > 0.5 {
			t.Errorf("loss after 3 steps %g, want about ln(300) = %.2f", r.Loss, math.Log(300))
		}
		if r.MFU != nil || r.GraphSteps != 0 {
			t.Errorf("on the CPU: MFU %v, graph steps %d", r.MFU, r.GraphSteps)
		}
	}
}

// Run opens the configured device and names it; MFU needs a known GPU.
func TestRunAndMFU(t *testing.T) {
	cfg := benchConfig()
	r, err := Run(cfg, "tiny", 0, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "tiny" || r.Device != "cpu" || r.MFU != nil {
		t.Errorf("Run: %+v", r)
	}
	if s := r.String(); !strings.HasPrefix(s, "tiny ") || !strings.Contains(s, "tok/s") || !strings.Contains(s, "TFLOP/s") {
		t.Errorf("row %q", s)
	}
	for dev, peak := range map[string]float64{
		"cuda:0 NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)": 989e12, "cuda:0 NVIDIA H200 (sm_90)": 989e12,
		"NVIDIA GH200 480GB": 989e12, "NVIDIA A100-SXM4-80GB": 312e12, "cpu": 0, "NVIDIA L4": 0,
	} {
		if got := train.PeakFLOPS(dev); got != peak {
			t.Errorf("train.PeakFLOPS(%q) = %g, want %g", dev, got, peak)
		}
	}
	bad := cfg
	bad.Train.Device = "tpu"
	if _, err := Run(bad, "x", 0, 1, nil); err == nil || !strings.Contains(err.Error(), "tpu") {
		t.Errorf("an unknown device: %v", err)
	}
}
