package train

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/device"
)

// BenchResult is the timing of training steps of one configuration.
type BenchResult struct {
	Name      string  `json:"name"`
	Device    string  `json:"device"`
	Params    int64   `json:"params"`
	Tokens    int     `json:"tokens_per_step"`
	StepMs    float64 `json:"step_ms"`
	TokPerS   float64 `json:"tok_per_s"`
	TFLOPS    float64 `json:"tflops"`
	MFU       float64 `json:"mfu"`
	PeakBytes int64   `json:"peak_bytes"`
	Loss      float64 `json:"last_loss"`
}

// peakBF16 is the dense bf16 tensor-core rate of GPUs we know, for MFU.
func peakBF16(device string) float64 {
	for _, k := range []string{"H100", "H200", "GH200"} {
		if strings.Contains(device, k) {
			return 989e12
		}
	}
	if strings.Contains(device, "A100") {
		return 312e12
	}
	return 0
}

// profiler is implemented by backends that can time their kernels.
type profiler interface {
	StartProfile()
	StopProfile(w io.Writer, steps int) error
}

// Bench times `steps` full training steps (forward, backward, optimizer) on
// random tokens after `warmup` untimed ones, on the device of cfg.
// With profile (CUDA only), a per-kernel table of device time goes to profile.
func Bench(cfg Config, name string, warmup, steps int, profile io.Writer) (BenchResult, error) {
	be, desc, err := device.Open(cfg.Train.Device, cfg.Train.Threads)
	if err != nil {
		return BenchResult{}, err
	}
	defer be.Close()
	r, err := runSteps(be, cfg, warmup, steps, profile, nil)
	r.Name, r.Device = name, desc
	if p := peakBF16(desc); p > 0 {
		r.MFU = r.TFLOPS * 1e12 / p
	}
	return r, err
}

// runSteps builds cfg on be, takes warmup untimed and steps timed training
// steps on random tokens, calls atEnd (if set) while everything is still
// allocated, and frees it.
func runSteps(be gpu.Backend, cfg Config, warmup, steps int, profile io.Writer, atEnd func()) (BenchResult, error) {
	if err := checkFits(cfg, be, true); err != nil {
		return BenchResult{}, err
	}
	m, err := buildModel(be, cfg)
	if err != nil {
		return BenchResult{}, err
	}
	defer m.Free()
	if err := m.Init(cfg.Train.Seed); err != nil {
		return BenchResult{}, err
	}
	opt, err := NewOptimizer(m, optimizerConfig(cfg))
	if err != nil {
		return BenchResult{}, err
	}
	defer opt.Free()
	tr := cfg.Train
	B, T := tr.MicroBatch, tr.SeqLen
	rng := rand.New(rand.NewPCG(tr.Seed, 1))
	in, tg := make([]int32, B*T), make([]int32, B*T)
	for i := range in {
		in[i], tg[i] = int32(rng.IntN(cfg.Model.VocabSize)), int32(rng.IntN(cfg.Model.VocabSize))
	}
	step := func() error {
		opt.Begin(cfg.PeakLR())
		m.ZeroGrads()
		for a := 0; a < tr.GradAccum; a++ {
			if err := m.SetBatch(in, tg, B, T); err != nil {
				return err
			}
			if a == 0 {
				if err := m.ZeroLoss(); err != nil {
					return err
				}
			}
			if err := m.ForwardDeferred(1 / float32(B*T*tr.GradAccum)); err != nil {
				return err
			}
			m.Backward()
		}
		return opt.Finish(cfg.PeakLR()) // no host sync: as a training step between log lines
	}
	for i := 0; i < warmup; i++ {
		if err := step(); err != nil {
			return BenchResult{}, err
		}
	}
	if err := be.Sync(); err != nil {
		return BenchResult{}, err
	}
	if warmup > 0 {
		be.Memory().ResetPeak()
	}
	start := time.Now()
	for i := 0; i < steps; i++ {
		if err := step(); err != nil {
			return BenchResult{}, err
		}
	}
	if err := be.Sync(); err != nil {
		return BenchResult{}, err
	}
	el := time.Since(start).Seconds()
	if p, ok := be.(profiler); ok && profile != nil {
		p.StartProfile()
		for i := 0; i < steps; i++ {
			if err := step(); err != nil {
				return BenchResult{}, err
			}
		}
		if err := p.StopProfile(profile, steps); err != nil {
			return BenchResult{}, err
		}
	}
	if atEnd != nil {
		atEnd()
	}
	sum, err := m.LossSum()
	if err != nil {
		return BenchResult{}, err
	}
	loss := sum / float64(B*T*tr.GradAccum)
	tokens := B * T * tr.GradAccum
	r := BenchResult{Params: cfg.Model.NumParams(), Tokens: tokens,
		StepMs: el / float64(steps) * 1e3, TokPerS: float64(tokens*steps) / el,
		PeakBytes: be.Memory().Snapshot().PeakAll, Loss: loss}
	r.TFLOPS = r.TokPerS * cfg.Model.TrainFLOPsPerToken(T) / 1e12
	return r, nil
}

// String formats a result as one table row.
func (r BenchResult) String() string {
	return fmt.Sprintf("%-28s %10.0f tok/s %8.1f TFLOP/s %6.1f%% MFU %8.2f GiB peak %8.1f ms/step",
		r.Name, r.TokPerS, r.TFLOPS, r.MFU*100, float64(r.PeakBytes)/(1<<30), r.StepMs)
}
