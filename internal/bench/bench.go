// Package bench times training steps (compact bench): the trainer's own
// step, its throughput, FLOP rate and model FLOPs utilisation.
package bench

import (
	"fmt"
	"io"
	"time"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/device"
	"github.com/compact-llm/compact/internal/train"
)

// Result is the timing of training steps of one configuration.
type Result struct {
	Name   string `json:"name"`
	Device string `json:"device"` // the backend, or the GPU's name
	// DeviceNote says how auto chose the device ("cpu (no usable CUDA
	// device: ...)"), printed once instead of in every row.
	DeviceNote string   `json:"device_note,omitempty"`
	Params     int64    `json:"params"`
	Tokens     int      `json:"tokens_per_step"`
	StepMs     float64  `json:"step_ms"`
	TokPerS    float64  `json:"tok_per_s"`
	TFLOPS     float64  `json:"tflops"`
	MFU        *float64 `json:"mfu"` // null where the device's peak is unknown
	PeakBytes  int64    `json:"peak_bytes"`
	Loss       float64  `json:"last_loss"`
	// GraphSteps is how many timed steps replayed a CUDA graph
	// (train.cuda_graph); the others ran eagerly or were captured.
	GraphSteps int `json:"graph_steps"`
}

// profiler is implemented by backends that can time their kernels.
type profiler interface {
	StartProfile()
	StopProfile(w io.Writer, steps int) error
}

// Run times `steps` full training steps (forward, backward, optimizer) on
// random tokens after `warmup` untimed ones, on the device of cfg.
// With profile (CUDA only), a per-kernel table of device time goes to profile.
func Run(cfg config.Config, name string, warmup, steps int, profile io.Writer) (Result, error) {
	be, desc, err := device.Open(cfg.Train.Device, cfg.Train.Threads)
	if err != nil {
		return Result{}, err
	}
	defer be.Close()
	if _, ok := be.(profiler); profile != nil && !ok {
		return Result{}, config.Usagef("--profile times each CUDA kernel; the %s backend has no kernel profiler (%s)", be.Name(), desc)
	}
	r, err := run(be, cfg, warmup, steps, profile)
	r.Name, r.Device = name, desc
	if be.Name() == device.CPU {
		r.Device = device.CPU
		if desc != device.CPU {
			r.DeviceNote = desc
		}
	}
	r.MFU = train.MFU(cfg, desc, r.TokPerS)
	return r, err
}

// run takes warmup untimed and steps timed training steps of cfg on be
// (train.Stepper: the trainer's own step on random tokens), then, with
// profile, steps more under the kernel profiler.
func run(be gpu.Backend, cfg config.Config, warmup, steps int, profile io.Writer) (Result, error) {
	s, err := train.NewStepper(be, cfg)
	if err != nil {
		return Result{}, err
	}
	defer s.Close()
	if err := s.Run(warmup); err != nil {
		return Result{}, err
	}
	if warmup > 0 {
		be.Memory().ResetPeak()
	}
	_, _, replayed0 := s.GraphRuns()
	start := time.Now()
	if err := s.Run(steps); err != nil {
		return Result{}, err
	}
	el := time.Since(start).Seconds()
	_, _, replayed := s.GraphRuns()
	if p, ok := be.(profiler); ok && profile != nil {
		p.StartProfile()
		if err := s.Run(steps); err != nil { // StopProfile waits for the device anyway
			return Result{}, err
		}
		if err := p.StopProfile(profile, steps); err != nil {
			return Result{}, err
		}
	}
	loss, err := s.Loss()
	if err != nil {
		return Result{}, err
	}
	tr := cfg.Train
	tokens := tr.MicroBatch * tr.SeqLen * tr.GradAccum
	r := Result{Params: cfg.Model.NumParams(), Tokens: tokens,
		StepMs: el / float64(steps) * 1e3, TokPerS: float64(tokens*steps) / el,
		PeakBytes: be.Memory().Snapshot().PeakAll, Loss: loss, GraphSteps: replayed - replayed0}
	r.TFLOPS = r.TokPerS * cfg.Model.TrainFLOPsPerToken(tr.SeqLen) / 1e12
	return r, nil
}

// String formats a result as one table row.
func (r Result) String() string {
	mfu := "    - MFU"
	if r.MFU != nil {
		mfu = fmt.Sprintf("%5.1f%% MFU", *r.MFU*100)
	}
	s := fmt.Sprintf("%-28s %10.0f tok/s %8.1f TFLOP/s %s %8.2f GiB peak %8.1f ms/step",
		r.Name, r.TokPerS, r.TFLOPS, mfu, float64(r.PeakBytes)/(1<<30), r.StepMs)
	if r.GraphSteps > 0 {
		s += fmt.Sprintf(" (%d graph steps)", r.GraphSteps)
	}
	return s
}
