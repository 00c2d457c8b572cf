package train

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
)

// countingBackend counts the gradient-norm reductions a step queues.
type countingBackend struct {
	gpu.Backend
	sumSquares int
}

func (c *countingBackend) SumSquares(acc *gpu.Tensor, ts ...*gpu.Tensor) {
	c.sumSquares++
	c.Backend.SumSquares(acc, ts...)
}

// A step nobody reads the norm of (bench's, a non-log step) computes none
// unless it clips, and GradNorm then refuses instead of returning the
// previous step's.
func TestUnreadGradNormIsSkipped(t *testing.T) {
	for _, c := range []struct {
		fused bool
		clip  float64
		want  bool
	}{{false, 0, false}, {true, 0, false}, {false, 1, true}} {
		cfg := leanConfig(true)
		cfg.Train.SeqLen, cfg.Train.MicroBatch, cfg.Model.MaxSeqLen, cfg.Train.Threads = 8, 2, 8, 2
		cfg.Train.FusedUpdate, cfg.Train.GradClip, cfg.Train.GradAccum = c.fused, c.clip, 1
		be := &countingBackend{Backend: cpu.New(2)}
		s, err := NewStepper(be, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Step(); err != nil {
			t.Fatal(err)
		}
		if got := be.sumSquares > 0; got != c.want {
			t.Errorf("%+v: %d sum-of-squares calls, want them %v", c, be.sumSquares, c.want)
		}
		if _, err := s.t.opt.GradNorm(); (err == nil) != c.want {
			t.Errorf("%+v: GradNorm after the step: %v", c, err)
		}
		s.Close()
	}
}

// Computing the norm only on log steps changes nothing else: a run that
// logs every third step logs the very numbers of one that logs every step
// on their common steps, and ends with the same weights and moments, with
// and without clipping and with a fused update.
func TestGradNormOnLogStepsOnly(t *testing.T) {
	for _, c := range []struct {
		fused bool
		clip  float64
	}{{false, 0}, {false, 0.05}, {true, 0}} {
		dir := t.TempDir()
		cfg := smallConfig(t, dir)
		cfg.Train.GradClip = c.clip
		if c.fused {
			cfg.Train.FusedUpdate, cfg.Train.GradAccum = true, 1
		}
		runs := map[int]string{}
		for _, every := range []int{1, 3} {
			cfg.Train.LogEvery = every
			runs[every] = filepath.Join(dir, "log", string(rune('0'+every)))
			if err := Pretrain(context.Background(), cfg, RunOptions{Out: runs[every]}); err != nil {
				t.Fatal(err)
			}
		}
		all, sparse := readMetrics(t, runs[1]), readMetrics(t, runs[3])
		if len(sparse) >= len(all) {
			t.Fatalf("%+v: %d log lines every 3 steps, %d every step", c, len(sparse), len(all))
		}
		byStep := map[int]Metric{}
		for _, m := range all {
			byStep[m.Step] = m
		}
		for _, m := range sparse {
			x := byStep[m.Step]
			if x.Loss != m.Loss || x.GradNorm != m.GradNorm || m.GradNorm == 0 {
				t.Fatalf("%+v: step %d: loss %v grad_norm %v, logging every step %v %v", c, m.Step, m.Loss, m.GradNorm, x.Loss, x.GradNorm)
			}
		}
		for _, name := range []string{checkpoint.ModelFile, checkpoint.OptimizerFile} {
			a, errA := os.ReadFile(filepath.Join(checkpoint.StepDir(filepath.Join(runs[1], "checkpoints"), cfg.Train.Steps), name))
			b, errB := os.ReadFile(filepath.Join(checkpoint.StepDir(filepath.Join(runs[3], "checkpoints"), cfg.Train.Steps), name))
			if errA != nil || errB != nil {
				t.Fatal(errA, errB)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("%+v: %s differs between the two runs", c, name)
			}
		}
	}
}
