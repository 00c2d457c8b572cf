// Package train runs training: a pretraining or fine-tuning run of a
// config (Pretrain, Finetune) from its setup (trainer.go: the run
// directory, data, backend, model and optimizer; resume.go) through the
// loop (loop.go; one step, step.go and graphstep.go; log steps,
// logstep.go) to its checkpoints (save.go, written by internal/checkpoint).
// With the loop live the training-health guard and its rollbacks
// (health.go, rollback.go), the data-parallel glue (dataparallel.go),
// metrics.jsonl (metrics.go) and what a run adds for its watcher
// (runextras.go). Bench, memreport and eval use its model factory
// (NewModel, build.go), memory prediction and fit check (memory.go,
// fit.go), Stepper (the trainer's own step on random tokens) and the
// validation pass (validate.go).
package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/dist"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/optim"
	"github.com/schollz/progressbar/v3"
)

// RunOptions are the per-invocation choices of a training run.
type RunOptions struct {
	Out    string
	Resume bool
	// ResumeFrom is a checkpoint (or run) directory to continue from
	// (--resume PATH), instead of the newest checkpoint in Out; one outside
	// Out starts a new run there that continues it. WeightsOnly resumes
	// from the weights, step, schedule and data position alone, with fresh
	// Adam moments (a checkpoint whose optimizer.safetensors was removed).
	ResumeFrom  string
	WeightsOnly bool
	Base        string    // fine-tuning: the checkpoint or HF directory the weights start from
	Log         io.Writer // plain log lines
	Progress    bool      // draw a progress bar on Log below the log lines
	// ResumeCommand is the command line that continues this run, printed
	// when the run is interrupted.
	ResumeCommand string

	// Overwrite moves an existing run in Out aside (to Out.old-TIMESTAMP)
	// instead of refusing it. AllowConfigChange lets Resume continue with
	// changed optimizer settings (lr, micro_batch, update_gap, ...), listed.
	Overwrite, AllowConfigChange bool

	// Dist places this process in a data-parallel job (dataparallel.go);
	// nil for a plain run. Only rank 0 logs and writes to Out.
	Dist *dist.Env
}

// ErrInterrupted is returned when the run's context was cancelled (SIGINT,
// SIGTERM): the checkpoint of the last complete step has been written.
var ErrInterrupted = errors.New("interrupted")

// Trainer owns one training run.
type Trainer struct {
	cfg     config.Config
	opts    RunOptions
	be      gpu.Backend
	device  string
	tok     data.Tokenizer
	model   *model.Model
	opt     *optim.Optimizer
	sched   optim.Schedule
	train   Batches
	val     Batches
	metrics *MetricsLog
	state   checkpoint.TrainerState

	deviceDesc string     // the device as opened ("NVIDIA H100 ...", "cpu"), for MFU
	extras     *runExtras // samples, TensorBoard, the tokenizer in checkpoints (runextras.go)

	bar      *progressbar.ProgressBar // nil: plain lines only
	barDesc  string
	lastCkpt string             // newest checkpoint this run wrote
	dir      *checkpoint.RunDir // the locked --out directory
	complete bool               // resumed a finished run: nothing to train
	dp       *dataParallel

	graphs    gpu.StepGrapher // nil: steps run eagerly (graphstep.go)
	graphRuns graphCounts
	health    *healthGuard // judges the state's Health (health.go)
}

// Pretrain trains cfg from scratch (or from the newest checkpoint in
// opts.Out with opts.Resume) for cfg.Train.Steps optimizer steps.
func Pretrain(ctx context.Context, cfg config.Config, opts RunOptions) error {
	if cfg.Finetune.Task != config.TaskCausal {
		return config.Usagef("finetune.task = %s: pretraining is causal; use compact finetune", cfg.Finetune.Task)
	}
	opts.Base = ""
	t, err := newTrainer(cfg, opts)
	if err != nil {
		return err
	}
	defer t.close()
	return t.dp.finish(t.adviseDivergence(t.run(ctx)))
}

func newTrainer(cfg config.Config, opts RunOptions) (_ *Trainer, err error) {
	t := &Trainer{cfg: cfg, opts: opts}
	resume := opts.Resume
	if opts.Dist == nil || opts.Dist.Rank == 0 { // only rank 0 claims --out
		if resume, err = checkpoint.ClaimResume(opts.Out, opts.ResumeFrom, opts.Resume, opts.Overwrite); err != nil {
			return nil, err
		}
	}
	if opts.Dist != nil && opts.Dist.Rank != 0 {
		t.opts.Log = nil // rank 0 speaks for the job and owns --out
	} else if t.dir, err = checkpoint.ClaimRunDir(opts.Out, resume, opts.Overwrite, t.logf); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil { // free what was built; leave nothing behind in a directory this run made
			t.close()
			t.dir.Release(true)
		}
	}()
	resumeFrom := ""
	if opts.Resume || opts.ResumeFrom != "" {
		if resumeFrom, err = checkpoint.ResumePoint(t.ckptRoot(), opts.ResumeFrom, opts.WeightsOnly); err != nil {
			return nil, err
		}
		if resumeFrom == "" && opts.WeightsOnly {
			return nil, config.Usagef("--weights-only: %s holds no checkpoint to take the weights from", t.ckptRoot())
		}
		if resumeFrom == "" {
			t.logf("resume: no checkpoint in %s, starting from scratch", t.ckptRoot())
		}
	}
	if resumeFrom != "" {
		if err := t.adoptResumeState(resumeFrom); err != nil {
			return nil, err
		}
		if t.complete { // run says so; nothing is built or written
			return t, checkpoint.CheckTensorFiles(resumeFrom, opts.WeightsOnly)
		}
	}
	if t.tok, err = data.NewTokenizer(cfg.Data.Tokenizer); err != nil {
		return nil, &config.UsageError{Err: fmt.Errorf("data.tokenizer: %w", err)}
	}
	if t.tok.VocabSize() > cfg.Model.VocabSize {
		return nil, config.Usagef("data.tokenizer %s has %d tokens, more than the model's vocab_size %d", cfg.Data.Tokenizer, t.tok.VocabSize(), cfg.Model.VocabSize)
	}
	if err := t.openData(); err != nil {
		return nil, err
	}
	var how string
	if t.be, how, err = openBackend(cfg, opts.Dist); err != nil {
		return nil, err
	}
	t.device, t.deviceDesc = t.be.Name(), how
	t.logf("device: %s", how)
	if t.dp, err = joinJob(opts.Dist, t.be, t.jobOptions(opts.Log, resumeFrom)); err != nil {
		return nil, err
	}
	if t.graphs, err = stepGraphs(cfg, t.be, t.dp != nil); err != nil {
		return nil, err
	}
	if t.graphs != nil {
		t.logf("cuda graphs: steps that do not log replay a graph captured from an earlier step (train.cuda_graph = %s)", cfg.Train.CUDAGraph)
	}
	if err := checkFitsRank(cfg, t.be, t.dp.world()); err != nil {
		return nil, err
	}
	oc := cfg.OptimizerConfig()
	oc.Shard = cfg.Shard(t.dp.rank(), t.dp.world())
	if t.model, err = newRankModel(t.be, cfg, oc.Shard, t.dp.world()); err != nil {
		return nil, err
	}
	if t.opt, err = optim.New(t.model, oc); err != nil {
		return nil, err
	}
	if t.dp != nil {
		t.opt.SetExchange(t.dp)
	}
	t.sched = cfg.Schedule()
	t.logf("%s", cfg.RecipeLine())
	if err := t.initWeights(resumeFrom); err != nil {
		return nil, err
	}
	t.notice(runNotices(cfg, t.be, t.dp.world()))
	t.state.Tokenizer = cfg.Data.Tokenizer
	t.state.Optimizer = cfg.OptimizerName()
	if t.state.Health == nil { // a new run, or a checkpoint from before the guard
		t.state.Health = newHealthState()
	}
	t.health = newHealthGuard(cfg, t.state.Health)
	keep := -1
	if resumeFrom != "" {
		keep = t.state.Step
	}
	if t.dp.rank() != 0 {
		return t, nil
	}
	if resumeFrom != "" {
		if err := checkpoint.Supersede(t.opts.Out, t.state.Step, t.logf); err != nil {
			return nil, err
		}
	}
	if t.metrics, err = OpenMetrics(opts.Out, keep, t.state.Health.Rollbacks); err != nil {
		return nil, err
	}
	if t.extras, err = newRunExtras(t, max(keep, 0)); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Trainer) ckptRoot() string { return filepath.Join(t.opts.Out, "checkpoints") }

func (t *Trainer) close() {
	t.dp.finish(errors.New("setup or shutdown failed")) // no-op once the run left the job
	if t.train != nil {
		t.train.Close()
	}
	if t.val != nil {
		t.val.Close()
	}
	if t.metrics != nil {
		t.metrics.Close()
	}
	t.extras.close()
	if t.opt != nil {
		t.opt.Free()
	}
	if t.model != nil {
		t.model.Free()
	}
	if t.be != nil {
		t.be.Close()
	}
	t.dir.Release(false)
}
