package train

// What the run writes besides metrics: its checkpoints (the ranks' weights
// compared and, under ZeRO-1, every rank's share gathered to rank 0, which
// writes them through internal/checkpoint) and memreport.json.

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/model"
)

// checkpoint writes the checkpoint of the current step.
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

// modelEpoch is the projection epoch of the current step's update.
func (t *Trainer) modelEpoch() uint32 {
	if t.cfg.Compact.UpdateGap <= 0 || t.state.Step == 0 {
		return 0
	}
	return uint32((t.state.Step - 1) / t.cfg.Compact.UpdateGap)
}

// writeMemreport writes memreport.json: the predicted peak, and once the
// run is done (measured) the measured one beside it.
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
