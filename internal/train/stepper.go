package train

import (
	"encoding/json"
	"math/rand/v2"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/optim"
)

// Stepper takes the trainer's own optimizer steps (Trainer.step) on one
// batch of random tokens, without a run directory, data or checkpoints:
// bench times them and memreport measures their memory.
type Stepper struct{ t *Trainer }

// NewStepper builds cfg's model, initialised from train.seed, and its
// optimizer on be, which stays the caller's. Every micro-batch is the same
// B*T random tokens (from train.seed), every target valid, and the rate is
// the constant peak learning rate.
func NewStepper(be gpu.Backend, cfg config.Config) (*Stepper, error) {
	if err := CheckFits(cfg, be, true); err != nil {
		return nil, err
	}
	tr := cfg.Train
	rng := rand.New(rand.NewPCG(tr.Seed, 1))
	in, tg := make([]int32, tr.MicroBatch*tr.SeqLen), make([]int32, tr.MicroBatch*tr.SeqLen)
	for i := range in {
		in[i], tg[i] = int32(rng.IntN(cfg.Model.VocabSize)), int32(rng.IntN(cfg.Model.VocabSize))
	}
	t := &Trainer{cfg: cfg, be: be, device: be.Name(), train: sameBatch{in, tg},
		sched: optim.Schedule{LR: cfg.PeakLR()}} // no warmup, no decay: At is LR
	s := &Stepper{t}
	var err error
	if t.graphs, err = stepGraphs(cfg, be, false); err != nil {
		return nil, err
	}
	if t.model, err = NewModel(be, cfg); err != nil {
		return nil, err
	}
	if err := t.model.Init(tr.Seed); err != nil {
		s.Close()
		return nil, err
	}
	if t.opt, err = optim.New(t.model, cfg.OptimizerConfig()); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Step takes one optimizer step without waiting for the device.
func (s *Stepper) Step() error {
	_, _, err := s.t.step(false)
	return err
}

// Run takes n steps and waits for the device to finish them.
func (s *Stepper) Run(n int) error {
	for i := 0; i < n; i++ {
		if err := s.Step(); err != nil {
			return err
		}
	}
	return s.t.be.Sync()
}

// GraphRuns returns how many steps so far ran eagerly, were captured into
// a CUDA graph, and replayed one (train.cuda_graph).
func (s *Stepper) GraphRuns() (eager, captured, replayed int) {
	c := s.t.graphRuns
	return c[gpu.GraphEager], c[gpu.GraphCaptured], c[gpu.GraphReplayed]
}

// Loss waits for the device and returns the mean training loss of the last
// step.
func (s *Stepper) Loss() (float64, error) {
	sum, err := s.t.model.LossSum()
	if err != nil {
		return 0, err
	}
	tr := s.t.cfg.Train
	return sum / float64(tr.MicroBatch*tr.SeqLen*tr.GradAccum), nil // every target is valid
}

// Close frees the model and optimizer; the backend is the caller's.
func (s *Stepper) Close() {
	if s.t.opt != nil {
		s.t.opt.Free()
	}
	s.t.model.Free()
}

// sameBatch serves one batch for ever.
type sameBatch struct{ in, tg []int32 }

func (b sameBatch) Next() ([]int32, []int32, error)     { return b.in, b.tg, nil }
func (b sameBatch) Reset()                              {}
func (b sameBatch) Close() error                        { return nil }
func (b sameBatch) EvalBatches(limit int) int           { return limit }
func (b sameBatch) SaveState() (json.RawMessage, error) { return nil, nil }
func (b sameBatch) RestoreState(json.RawMessage) error  { return nil }
