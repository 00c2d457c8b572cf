package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

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

// logf prints a log line; with a progress bar, above it (the bar is
// cleared, the line printed, the bar redrawn below).
func (t *Trainer) logf(format string, a ...any) {
	if t.opts.Log == nil {
		return
	}
	if t.bar != nil {
		progressbar.Bprintln(t.bar, fmt.Sprintf(format, a...))
		t.bar.Describe(t.barDesc) // redraws: flushes the line, then the bar
		return
	}
	fmt.Fprintf(t.opts.Log, format+"\n", a...)
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

// step runs one optimizer step: grad_accum micro-batches of forward and
// backward, then the update. Only with read does it wait for the GPU, to
// return the mean training loss and the gradient norm for logging.
func (t *Trainer) stepEager(read bool) (loss, gradNorm float64, err error) {
	tr := t.cfg.Train
	B, T := tr.MicroBatch, tr.SeqLen
	type micro struct{ in, tg []int32 }
	batches := make([]micro, tr.GradAccum)
	valid := 0
	var before json.RawMessage
	if os.Getenv(PoisonEnv) != "" { // a test hook (fault.go)
		before, _ = t.train.SaveState()
	}
	for i := range batches {
		in, tg, err := t.train.Next()
		if err != nil {
			return 0, 0, err
		}
		batches[i] = micro{in, tg}
		for _, v := range tg {
			if v >= 0 {
				valid++
			}
		}
	}
	if t.dp != nil { // the loss is the mean over the global batch
		v, err := t.dp.sum(float64(valid))
		if err != nil {
			return 0, 0, err
		}
		valid = int(v)
		t.dp.beginStep(t.opt.Step + 1)
	}
	if valid == 0 {
		return 0, 0, fmt.Errorf("step %d: no valid targets", t.opt.Step+1)
	}
	lr := t.sched.At(t.opt.Step+1) * t.lrScale()
	if before != nil {
		after, _ := t.train.SaveState()
		lr *= poisonFactor(before, after)
	}
	t.opt.Begin(lr, read)
	t.model.ZeroGrads()
	for i, mb := range batches {
		if err := t.model.SetBatch(mb.in, mb.tg, B, T); err != nil {
			return 0, 0, err
		}
		if i == 0 {
			if err := t.model.ZeroLoss(); err != nil {
				return 0, 0, err
			}
		}
		if err := t.model.ForwardDeferred(1 / float32(valid)); err != nil {
			return 0, 0, err
		}
		t.maybeInterruptSelf(t.opt.Step + 1)
		if err := t.model.BackwardInterruptible(); err != nil {
			return 0, 0, err
		}
	}
	if t.dp != nil && !t.model.Fused() && !t.opt.Sharded() { // sharded: Apply reduce-scatters
		if err := t.dp.reduceArena(t.model); err != nil {
			return 0, 0, err
		}
	}
	if err := t.opt.Finish(lr); err != nil {
		return 0, 0, err
	}
	t.state.Step = t.opt.Step
	t.state.LR = lr
	t.state.Tokens += int64(B * T * tr.GradAccum * t.dp.world())
	if !read {
		return 0, 0, nil
	}
	sum, err := t.model.LossSum()
	if err != nil {
		return 0, 0, err
	}
	if sum, err = t.dp.sum(sum); err != nil {
		return 0, 0, err
	}
	gn, err := t.opt.GradNorm()
	if err != nil {
		return 0, 0, err
	}
	return sum / float64(valid), gn, nil
}

// evaluate returns the mean loss over the validation set (the first
// eval_batches batches, the same every time) and, for a classifier, the
// accuracy (else -1).
func (t *Trainer) evaluate() (loss, acc float64, err error) {
	return Validate(t.model, t.val, t.cfg.Train.MicroBatch, t.cfg.Train.SeqLen, t.cfg.Train.EvalBatches)
}

func (t *Trainer) checkpoint() error {
	ls, err := t.train.SaveState()
	if err != nil {
		return err
	}
	return t.checkpointAt(ls)
}

// checkpointAt writes the checkpoint of the current step with the loader
// at ls (the position before an abandoned step, after an interrupt).
func (t *Trainer) checkpointAt(ls json.RawMessage) error {
	if err := t.dp.checkSame(t.model); err != nil {
		return fmt.Errorf("checkpoint at step %d: %w", t.state.Step, err)
	}
	var weights, moments []model.NamedTensor
	if t.dp.rank() == 0 || t.opt.Sharded() { // sharded, every rank sends its moments (and master) to rank 0
		var err error
		if moments, err = t.opt.Moments(0); err != nil {
			return fmt.Errorf("checkpoint at step %d: %w", t.state.Step, err)
		}
		if weights, err = t.opt.Weights(0); err != nil {
			return fmt.Errorf("checkpoint at step %d: %w", t.state.Step, err)
		}
	}
	if t.dp.rank() != 0 { // rank 0 holds everything and writes it once
		t.lastCkpt = checkpoint.StepDir(t.ckptRoot(), t.state.Step)
		return nil
	}
	t.state.Loader = ls
	t.state.Epoch = t.modelEpoch()
	t.state.World = t.dp.world()
	t.state.Config = t.cfg
	var extra []checkpoint.File
	if t.extras != nil {
		extra = t.extras.tokFiles
	}
	dir, err := checkpoint.SaveTensors(t.ckptRoot(), t.model, weights, moments, t.opt.MomentDType(), t.state, int(t.tok.EOT()), t.cfg.Train.KeepCheckpoints, extra...)
	var nf *checkpoint.NonFiniteError
	if errors.As(err, &nf) {
		err = &DivergedError{Step: nf.Step, What: nf.What}
	}
	if err != nil {
		return fmt.Errorf("checkpoint at step %d: %w", t.state.Step, err)
	}
	t.lastCkpt = dir
	t.logf("checkpoint %s", dir)
	return nil
}

func (t *Trainer) modelEpoch() uint32 {
	if t.cfg.Compact.UpdateGap <= 0 || t.state.Step == 0 {
		return 0
	}
	return uint32((t.state.Step - 1) / t.cfg.Compact.UpdateGap)
}

func (t *Trainer) writeMemreport(measured bool) error {
	if t.dp.rank() != 0 {
		return nil
	}
	tr := t.cfg.Train
	pred, err := predictMemory(t.cfg, tr.MicroBatch, tr.SeqLen, t.be.Name(), t.cfg.Shard(0, t.dp.world()), t.dp.world())
	if err != nil {
		return err
	}
	mf := MemoryFile{Device: t.device, MicroBatch: tr.MicroBatch, SeqLen: tr.SeqLen, CompAct: t.cfg.Compact.Enabled,
		Recompute: tr.Recompute, Predicted: categoryMap(pred.PeakAt, pred.PeakAll), ActivationKinds: pred.Kinds,
		Note: "bytes of device allocations made by the engine, by category; predicted by building the run on a metering backend"}
	if w := t.dp.world(); w > 1 {
		mf.World, mf.Zero = w, t.cfg.Train.Zero
		mf.Note += fmt.Sprintf("; rank 0 of %d (train.zero %d)", w, t.cfg.Train.Zero)
	}
	if t.cfg.Compact.Enabled {
		mf.Rank = t.cfg.Compact.Rank
	}
	if measured {
		s := t.be.Memory().Snapshot()
		mf.Measured = categoryMap(s.PeakAt, s.PeakAll)
	}
	return writeMemoryFile(t.opts.Out, mf)
}

func (t *Trainer) run(ctx context.Context) error {
	if t.complete {
		t.logf("%s", t.completeLine(t.lastCkpt))
		return nil
	}
	tr := t.cfg.Train
	if err := t.writeMemreport(false); err != nil {
		return err
	}
	start := t.state.Step
	t.logf("model: %d parameters, %d layers, hidden %d; compact %v; steps %d..%d, %d tokens per step",
		t.cfg.Model.NumParams(), t.cfg.Model.Layers, t.cfg.Model.Hidden, t.cfg.Compact.Enabled,
		start+1, tr.Steps, tr.MicroBatch*tr.SeqLen*tr.GradAccum*t.dp.world())
	if t.opts.Progress && t.opts.Log != nil {
		t.barDesc = "training"
		t.bar = progressbar.NewOptions(tr.Steps-start, progressbar.OptionSetWriter(t.opts.Log),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetDescription(t.barDesc), progressbar.OptionClearOnFinish())
		defer func() {
			if t.bar != nil { // an error left the bar drawn: clear its line
				t.bar.Exit()
				t.bar = nil
			}
		}()
	}
	if t.dp == nil { // ranks stop only where they agree to: between steps
		t.model.Stop = func() bool { return ctx.Err() != nil }
		defer func() { t.model.Stop = nil }()
	}
	sum := runSummary{began: time.Now(), startStep: start, startTokens: t.state.Tokens}
	lastLog, lastTokens, lastStep := sum.began, t.state.Tokens, start
	var lastMetric Metric
	for t.state.Step < tr.Steps {
		before, err := t.train.SaveState() // where an abandoned step leaves the loader
		if err != nil {
			return err
		}
		stop, err := t.dp.agreeStop(ctx.Err() != nil)
		if err != nil {
			return err
		}
		if stop {
			return t.interrupted(before)
		}
		step := t.state.Step + 1
		last := step == tr.Steps
		evalNow := last || (tr.EvalEvery > 0 && step%tr.EvalEvery == 0)
		logNow := step%tr.LogEvery == 0 || evalNow || step == 1
		loss, gn, err := t.step(logNow)
		if errors.Is(err, model.ErrInterrupted) {
			return t.interrupted(before)
		}
		if err != nil {
			return err
		}
		if logNow {
			err := checkFinite(step, "the training loss", loss)
			if err == nil {
				err = checkFinite(step, "the gradient norm", gn)
			}
			if err != nil {
				return err
			}
			now := time.Now()
			m := Metric{Step: step, Loss: loss, LR: t.state.LR, Tokens: t.state.Tokens,
				TokPerS:   float64(t.state.Tokens-lastTokens) / now.Sub(lastLog).Seconds(),
				PeakBytes: t.be.Memory().Snapshot().PeakAll, GradNorm: gn, ElapsedS: now.Sub(sum.began).Seconds(),
				StepMs: now.Sub(lastLog).Seconds() * 1e3 / float64(step-lastStep)}
			m.MFU = MFU(t.cfg, t.deviceDesc, m.TokPerS/float64(t.dp.world()))
			lastLog, lastTokens, lastStep = now, t.state.Tokens, step
			if evalNow {
				vl, acc, err := t.evaluate()
				if err != nil {
					return err
				}
				if err := checkFinite(step, "the validation loss", vl); err != nil {
					return err
				}
				m.ValLoss = &vl
				if acc >= 0 {
					m.ValAcc = &acc
				}
			}
			if t.dp != nil {
				m.Comm = &t.dp.bytes
			}
			m.Health = t.health.observe(step, loss, gn)
			if m.ValLoss != nil {
				m.Health = append(m.Health, t.health.observeVal(step, *m.ValLoss)...)
			}
			unstable, isUnstable := instability(m.Health)
			if last && !isUnstable {
				m.Health = append(m.Health, t.health.atEnd(step)...)
			}
			m.Rollbacks = t.state.Health.Rollbacks // the stretch this line belongs to
			acted, actErr := false, error(nil)
			if isUnstable && t.cfg.Train.OnInstability != config.InstabilityWarn {
				acted = true
				if actErr = t.onInstability(unstable); actErr == nil {
					m.Health = append(m.Health, t.state.Health.Events[len(t.state.Health.Events)-1]) // the rollback
				}
			}
			if t.metrics != nil {
				if err := t.metrics.Write(m); err != nil {
					return err
				}
			}
			sum.observe(m)
			lastMetric = m
			line := fmt.Sprintf("step %d/%d loss %.4f lr %.3g grad_norm %.3f tok/s %.0f ms/step %.1f", step, tr.Steps, loss, m.LR, gn, m.TokPerS, m.StepMs)
			if m.MFU != nil {
				line += fmt.Sprintf(" mfu %.1f%%", *m.MFU*100)
			}
			if m.ValLoss != nil {
				line += fmt.Sprintf(" val_loss %.4f", *m.ValLoss)
			}
			if m.ValAcc != nil {
				line += fmt.Sprintf(" val_accuracy %.4f", *m.ValAcc)
			}
			if t.bar != nil {
				// The bar shows its own time and ETA; its loss says which step it is from.
				t.barDesc = fmt.Sprintf("loss %.3f @%d  %.0f tok/s", loss, step, m.TokPerS)
			} else {
				line += fmt.Sprintf(" elapsed %s eta %s", shortDuration(now.Sub(sum.began)), shortDuration(sum.eta(now, step, tr.Steps)))
			}
			t.logf("%s", line)
			for _, e := range m.Health {
				t.logf("health: %s", e.Message)
			}
			if acted {
				if actErr != nil {
					return actErr
				}
				if t.bar != nil {
					t.bar.Add(1)
				}
				continue // rolled back: no checkpoint of the abandoned state
			}
		}
		var logged *Metric
		if logNow {
			logged = &lastMetric
		}
		if err := t.extras.afterStep(t, step, logged); err != nil {
			return err
		}
		if t.bar != nil {
			t.bar.Add(1)
		}
		if last || (tr.CheckpointEvery > 0 && step%tr.CheckpointEvery == 0) {
			if err := t.checkpoint(); err != nil {
				return err
			}
		}
	}
	if t.bar != nil {
		t.bar.Finish()
		t.bar = nil
	}
	if err := t.writeMemreport(true); err != nil {
		return err
	}
	if h := healthSummary(t.state.Health); h != "" {
		t.logf("%s", h)
	}
	t.logf("%s", sum.report(t.state, t.be.Memory().Snapshot().PeakAll, t.lastCkpt))
	return nil
}

// lrScale is the learning-rate multiplier that rollbacks have set (1
// before any).
func (t *Trainer) lrScale() float64 {
	if t.state.Health == nil {
		return 1
	}
	return t.state.Health.LRScale
}

// onInstability acts on an instability as train.on_instability says:
// stop the run (exit 1), or roll it back (rollback.go).
func (t *Trainer) onInstability(e checkpoint.HealthEvent) error {
	if t.cfg.Train.OnInstability == config.InstabilityRollback {
		return t.rollback(e)
	}
	last, err := checkpoint.Before(t.ckptRoot(), e.Since)
	if err != nil {
		return err
	}
	return &InstabilityError{Event: e, Last: last}
}

// interrupted abandons the step in flight, writes the checkpoint of the
// last complete step (loader at before) unless it exists, and says how to
// resume.
func (t *Trainer) interrupted(before json.RawMessage) error {
	if t.bar != nil {
		t.bar.Exit()
		t.bar = nil
	}
	if t.state.Step == 0 {
		t.logf("interrupted during step 1: nothing to save")
		return fmt.Errorf("%w before the first step completed", ErrInterrupted)
	}
	if t.lastCkpt == "" || t.lastCkpt != checkpoint.StepDir(t.ckptRoot(), t.state.Step) {
		t.logf("interrupted: writing the checkpoint of step %d, the last complete one", t.state.Step)
		if err := t.checkpointAt(before); err != nil {
			return err
		}
	}
	hint := ""
	if t.opts.ResumeCommand != "" {
		hint = "; resume with: " + t.opts.ResumeCommand
	}
	return fmt.Errorf("%w at step %d, checkpoint %s%s", ErrInterrupted, t.state.Step, t.lastCkpt, hint)
}
