package train

// One optimizer step of the run, eagerly (graphstep.go records it for a
// CUDA graph), and the validation pass at eval steps.

import (
	"encoding/json"
	"fmt"
	"os"
)

// stepEager runs one optimizer step: grad_accum micro-batches of forward and
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
