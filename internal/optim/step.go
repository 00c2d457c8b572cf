package optim

// When the update runs. Unfused (Apply), after the training pass over the
// whole gradient arena: the global norm, the clip scale, then every owned
// param in arena order. Fused (train.fused_update; Begin, Finish), inside
// the pass: the model calls the hook for each group of params as soon as
// their gradients are final (model/fused.go), and each param takes the very
// update Apply gives it, on the same moments with the same rounding keys;
// only the time it runs changes. So with no gradient arena the step is the
// same as the unfused one, to the bit on the CPU backend. With gradient
// accumulation the model keeps its gradient arena (fp32, or bf16 sums:
// model/accum.go, which the update reads as they are) and calls the hook
// during the last micro-batch's backward only.
//
// Clipping by the global norm would need the whole gradient before the
// first update, so a fused update requires train.grad_clip = 0 (the paper's
// recipes clip nothing). The norm is still reported on the steps that read
// it (Begin's norm): each group's sum of squares is added as it is
// produced, so a non-finite gradient anywhere still makes the reported norm
// non-finite.

import (
	"fmt"

	"github.com/compact-llm/compact/internal/dist"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/projection"
)

// fusedStep is the state of a fused step between Begin and Finish.
type fusedStep struct {
	lr      float64
	norm    bool  // add each group's sum of squares to the norm
	updated int   // params updated this step (each exactly once)
	err     error // first failure inside the hook, reported by Finish
	// pending is the group whose reduction is in flight (pipelined).
	pending *pendingGroup
}

// pendingGroup is a fused group whose gradients are being reduced across
// the ranks while the next block's backward runs.
type pendingGroup struct {
	ps      []*model.Param
	reduced dist.Pending
}

// Apply takes one optimizer step at learning rate lr over the gradients
// accumulated in the model's arena, without reading the norm back: it only
// queues work, so a training step need not wait for the GPU. A fused
// optimizer updates inside the training pass instead (Begin, Finish).
func (o *Optimizer) Apply(lr float64) error {
	if o.layout.Fused {
		return fmt.Errorf("optimizer: the model was built for a fused update; step with Begin and Finish")
	}
	o.Step++
	o.model.SetEpoch(projection.Epoch(o.Step, o.cfg.UpdateGap))
	if o.shard.sharded() {
		if err := o.reduceShare(); err != nil {
			return err
		}
	}
	if o.wantNorm() {
		o.be.Zero(o.sumSq)
		o.be.SumSquares(o.sumSq, o.shard.ownGrads(o.layout))
		if err := o.sumNormOverRanks(); err != nil {
			return err
		}
		o.normStep = o.Step
	}
	if o.cfg.GradClip > 0 {
		o.be.ClipScale(o.clip, o.sumSq, float32(o.cfg.GradClip))
	}
	if _, err := o.updateAll(o.layout.Order, lr); err != nil {
		return fmt.Errorf("update at step %d: %w", o.Step, err)
	}
	if o.shard.sharded() {
		return o.shareWeights()
	}
	return nil
}

// updateAll updates the params of ps this rank owns, in order, generating
// (or fetching from the model's cache) each projection group's P once, and
// returns how many it updated.
func (o *Optimizer) updateAll(ps []*model.Param, lr float64) (int, error) {
	var P *gpu.Tensor
	lastLayer, lastGroup, n := -1, -1, 0
	for _, p := range ps {
		if !o.shard.owns(p) {
			continue // another rank's (ZeRO-1): its update arrives by all-gather
		}
		if p.Compressed() && (p.Layer != lastLayer || p.Group.ID != lastGroup) {
			P = o.model.Projection(p.Layer, p.Group)
			lastLayer, lastGroup = p.Layer, p.Group.ID
		}
		if err := o.update(p, P, lr); err != nil {
			return n, fmt.Errorf("%s: %w", p.Name, err)
		}
		n++
	}
	return n, nil
}

// wantNorm reports whether the step being taken computes the gradient
// norm: when it clips, or unless Begin said nobody reads it. The request
// lasts one step.
func (o *Optimizer) wantNorm() bool {
	want := o.cfg.GradClip > 0 || !o.skipNorm
	o.skipNorm = false
	return want
}

// Begin starts an optimizer step at learning rate lr before its forward
// passes: it selects the step's projection epoch and, for a fused model,
// arms the update hook. Finish ends the step. norm says whether GradNorm
// will be read after it; without clipping, a step nobody reads the norm of
// skips computing it (one reduction per tensor).
func (o *Optimizer) Begin(lr float64, norm bool) {
	o.skipNorm = !norm
	if !o.layout.Fused {
		o.BeginStep()
		return
	}
	o.dropPending() // a step abandoned halfway (interrupted backward)
	o.Step++
	o.model.SetEpoch(projection.Epoch(o.Step, o.cfg.UpdateGap))
	o.model.SetStep(o.Step)
	o.fused = fusedStep{lr: lr, norm: o.wantNorm()} // the clip scale stays 1: no clipping
	if o.fused.norm {
		o.be.Zero(o.sumSq)
		o.normStep = o.Step
	}
	o.model.SetUpdateHook(o.fusedUpdate)
}

// Finish completes the step Begin started: the whole update for an unfused
// model; for a fused one, a check that every param was updated once.
func (o *Optimizer) Finish(lr float64) error {
	if !o.layout.Fused {
		return o.Apply(lr)
	}
	o.model.SetUpdateHook(nil)
	o.finishPending() // the last group (the embedding's)
	if o.fused.err != nil {
		return fmt.Errorf("fused update at step %d: %w", o.Step, o.fused.err)
	}
	if o.fused.norm {
		if err := o.sumNormOverRanks(); err != nil {
			return fmt.Errorf("fused update at step %d: %w", o.Step, err)
		}
	}
	if n := o.shard.ownedParams(); o.fused.updated != n {
		return fmt.Errorf("fused update at step %d: %d updates for %d params (one forward and backward per step)", o.Step, o.fused.updated, n)
	}
	if o.shard.sharded() {
		// The updated weights go out once the pass is over: nothing later
		// in the pass reads a group's weights after its hook.
		if err := o.shareWeights(); err != nil {
			return fmt.Errorf("fused update at step %d: %w", o.Step, err)
		}
	}
	return nil
}

// fusedUpdate is the model's hook: it sums the gradients of ps over the
// ranks of a data-parallel job, adds them to the norm and updates each
// param. Pipelined (model.Layout.Pipelined), it only issues the reduction,
// which runs during the next block's backward, and finishes the group
// before it: reduce block l while computing block l-1, update block l
// after. Each param takes the same update either way.
func (o *Optimizer) fusedUpdate(ps []*model.Param) {
	if o.fused.err != nil {
		return
	}
	if o.pipelined() {
		reduced := o.dp.Issue(func() error { return o.reduceGroup(ps) })
		o.finishPending()
		o.fused.pending = &pendingGroup{ps: ps, reduced: reduced}
		return
	}
	if err := o.reduceGroup(ps); err != nil {
		o.fused.err = err
		return
	}
	o.updateGroup(ps)
}

// pipelined reports whether the hook overlaps each group's reduction with
// the next block's backward.
func (o *Optimizer) pipelined() bool { return o.dp != nil && o.layout.Pipelined }

// finishPending waits for the pending group's reduction, updates the group
// and clears its gradients (the model leaves that to a pipelined hook).
func (o *Optimizer) finishPending() {
	g := o.fused.pending
	if g == nil {
		return
	}
	o.fused.pending = nil
	if err := g.reduced.Wait(); err != nil && o.fused.err == nil {
		o.fused.err = err
	}
	if o.fused.err == nil {
		o.updateGroup(g.ps)
	}
	for _, p := range g.ps {
		o.be.Zero(p.Grad)
	}
}

// dropPending waits for a reduction still in flight from a step that never
// finished, and forgets it (the next step zeroes every gradient).
func (o *Optimizer) dropPending() {
	if g := o.fused.pending; g != nil {
		o.fused.pending = nil
		g.reduced.Wait()
	}
}

// updateGroup adds the summed gradients of ps to the norm and updates each
// param this rank owns.
func (o *Optimizer) updateGroup(ps []*model.Param) {
	// One call per tensor: CUDA's scratch holds one tensor's partial sums
	// (the CUDA backend's Footprint), and memreport counts no more. Sharded, a
	// rank holds the summed gradients of its own params only, and adds
	// those (Finish sums the ranks' parts).
	if o.fused.norm {
		for _, p := range ps {
			if o.shard.owns(p) {
				o.be.SumSquares(o.sumSq, p.Grad)
			}
		}
	}
	n, err := o.updateAll(ps, o.fused.lr)
	o.fused.updated += n
	if err != nil {
		o.fused.err = err
	}
}
