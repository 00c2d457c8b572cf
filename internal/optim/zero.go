package optim

// ZeRO-1 (train.zero = 1, issue 13): in a data-parallel job each rank keeps
// the Adam moments of its own share of the parameters only. The shares are
// contiguous runs of whole params in arena order, balanced by moment bytes
// (partition), so a rank's moments are one contiguous range of the gradient
// layout and its weights one range of the weight arena. A step
// reduce-scatters the gradients over those ranges (each rank receives the
// sum of its own range only: half an all-reduce's traffic; a fused update
// reduces each param into its owner), the global norm adds the ranks' parts
// of the squared norm on the host, each rank updates only its params, and an
// all-gather over the weight ranges gives every rank the others' updates.
// Each owned param takes exactly the update the unsharded optimizer gives it,
// with the same rounding keys, so a ZeRO-1 run is the unsharded run to the
// bit on the CPU.
//
// The fp32 master copy (CUDA, train.weights master) is sharded the same
// way: each rank allocates the master of its own weight range only
// (model/mastershard.go), rounds it into its bf16 weights, and those are
// all-gathered; checkpoints gather the masters from their owners.

import (
	"fmt"

	"github.com/compact-llm/compact/internal/dist"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/model"
)

// Shard places an optimizer in a ZeRO-1 job: it keeps the state of rank
// Rank's share of World. World <= 1 is the whole state.
type Shard struct{ Rank, World int }

// Exchange is what an optimizer in a data-parallel job needs from the
// other ranks (the trainer's data-parallel glue implements it).
type Exchange interface {
	// Reduce sums the gradients of ps over the ranks on every rank.
	Reduce(ps []*model.Param) error
	// ReduceTo sums p's gradient over the ranks into owner's.
	ReduceTo(p *model.Param, owner int) error
	// ReduceScatter sums the gradient arena grads of params ps over the
	// ranks, rank r receiving range r of bounds.
	ReduceScatter(grads *gpu.Tensor, ps []*model.Param, bounds []int) error
	// AllGather gives every rank range r of t from rank r.
	AllGather(t *gpu.Tensor, bounds []int) error
	// Broadcast overwrites t on every rank with root's.
	Broadcast(t *gpu.Tensor, root int) error
	// SumHost sums v over the ranks, in place.
	SumHost(v []float64) error
	// Issue runs f (collectives through this exchange) concurrently with
	// the caller's later work (dist.Comm.Issue).
	Issue(f func() error) dist.Pending
}

// SetExchange puts the optimizer in a data-parallel job (nil: none).
func (o *Optimizer) SetExchange(x Exchange) { o.dp = x }

// Sharded reports whether this optimizer holds a ZeRO-1 share of the state
// rather than all of it.
func (o *Optimizer) Sharded() bool { return o.shard.sharded() }

// zeroShard is an optimizer's share of the parameters.
type zeroShard struct {
	rank, world int
	owner       map[*model.Param]int // the rank holding each param's state
	// wRange[r] and gRange[r] are rank r's ranges of the weight arena and of
	// the gradient layout (where its moments are).
	wRange, gRange [][2]int
	// wBounds and gBounds are the same ranges as collective bounds: rank r's
	// runs from b[r] to b[r+1].
	wBounds, gBounds []int
}

// newZeroShard splits the params of lay among sh.World ranks and returns
// rank sh.Rank's share; the whole model for a one-rank shard.
func newZeroShard(lay model.Layout, sh Shard) (*zeroShard, error) {
	world := max(sh.World, 1)
	order := lay.Order
	if world > len(order) {
		return nil, fmt.Errorf("optimizer: train.zero = 1 over %d ranks, but the model has only %d parameters to share out; set train.zero = 0", world, len(order))
	}
	if sh.Rank < 0 || sh.Rank >= world {
		return nil, fmt.Errorf("optimizer: shard rank %d of %d", sh.Rank, world)
	}
	// Each param's extent in both layouts runs to the next param's offset
	// (padding included), the last one's to the end of the arena.
	wEnd, gEnd := make([]int, len(order)), make([]int, len(order))
	sizes := make([]int64, len(order))
	for i, p := range order {
		wEnd[i], gEnd[i] = lay.Weights.Len(), lay.GradLen
		if i+1 < len(order) {
			wEnd[i], gEnd[i] = order[i+1].WOff, order[i+1].GradOff
		}
		sizes[i] = int64(gEnd[i] - p.GradOff)
	}
	bounds := partition(sizes, world)
	z := &zeroShard{rank: sh.Rank, world: world, owner: map[*model.Param]int{}}
	for r := range world {
		first, last := bounds[r], bounds[r+1]-1
		z.wRange = append(z.wRange, [2]int{order[first].WOff, wEnd[last]})
		z.gRange = append(z.gRange, [2]int{order[first].GradOff, gEnd[last]})
		for _, p := range order[first : last+1] {
			z.owner[p] = r
		}
	}
	for _, rg := range []struct {
		rs [][2]int
		b  *[]int
	}{{z.wRange, &z.wBounds}, {z.gRange, &z.gBounds}} {
		*rg.b = []int{rg.rs[0][0]}
		for _, r := range rg.rs {
			*rg.b = append(*rg.b, r[1])
		}
	}
	return z, nil
}

// partition splits items of the given sizes (positive) into world
// contiguous, non-empty runs whose largest sum is as small as it can be,
// and returns the world+1 bounds: run r is items [b[r], b[r+1]). The
// smallest feasible largest sum is found by bisection (greedy packing
// decides feasibility); the runs are then packed greedily from the left,
// closing a run early only to leave one item per remaining rank, so the
// split is a deterministic function of sizes and world.
func partition(sizes []int64, world int) []int {
	var lo, hi int64 // the answer lies in [max size, total]
	for _, s := range sizes {
		lo, hi = max(lo, s), hi+s
	}
	runs := func(capacity int64) int {
		n, fill := 1, int64(0)
		for _, s := range sizes {
			if fill+s > capacity {
				n, fill = n+1, 0
			}
			fill += s
		}
		return n
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		if runs(mid) <= world {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	b := make([]int, 0, world+1)
	b = append(b, 0)
	fill := int64(0)
	for i, s := range sizes {
		left, toOpen := len(sizes)-i, world-len(b) // items from i on; runs not yet begun
		if toOpen > 0 && i > b[len(b)-1] && (fill+s > lo || left == toOpen) {
			b, fill = append(b, i), 0
		}
		fill += s
	}
	return append(b, len(sizes))
}

// owns reports whether this rank updates p.
func (z *zeroShard) owns(p *model.Param) bool { return z.owner[p] == z.rank }

// ownedParams counts the params this rank updates.
func (z *zeroShard) ownedParams() int {
	n := 0
	for _, r := range z.owner {
		if r == z.rank {
			n++
		}
	}
	return n
}

// sharded reports whether the state is split over several ranks.
func (z *zeroShard) sharded() bool { return z.world > 1 }

// momentBase is where this rank's moments start in the gradient layout.
func (z *zeroShard) momentBase() int { return z.gRange[z.rank][0] }

// momentLen is the length of this rank's moments.
func (z *zeroShard) momentLen() int { return z.gRange[z.rank][1] - z.gRange[z.rank][0] }

// ownGrads is the part of the gradient arena whose sum this rank holds
// after the reduction: its range when sharded, else all of it.
func (z *zeroShard) ownGrads(lay model.Layout) *gpu.Tensor {
	if !z.sharded() {
		return lay.Grads
	}
	return lay.Grads.Rows(z.gRange[z.rank][0], z.gRange[z.rank][1])
}

// needExchange refuses a sharded step outside a job.
func (o *Optimizer) needExchange() error {
	if o.dp == nil {
		return fmt.Errorf("optimizer: sharded over %d ranks outside a data-parallel job", o.shard.world)
	}
	return nil
}

// reduceShare sums the gradient arena over the ranks by a reduce-scatter:
// each rank receives the sum of its own range only, which is all its update
// reads (the global norm adds the ranks' parts, sumNormOverRanks).
func (o *Optimizer) reduceShare() error {
	if err := o.needExchange(); err != nil {
		return err
	}
	return o.dp.ReduceScatter(o.layout.Grads, o.layout.Params, o.shard.gBounds)
}

// reduceGroup sums a fused group's gradients over the ranks: sharded, each
// param's into its owner only (a reduce-scatter, param by param); else into
// every rank.
func (o *Optimizer) reduceGroup(ps []*model.Param) error {
	if o.dp == nil {
		return nil
	}
	if !o.shard.sharded() {
		return o.dp.Reduce(ps)
	}
	for _, p := range ps {
		if err := o.dp.ReduceTo(p, o.shard.owner[p]); err != nil {
			return err
		}
	}
	return nil
}

// sumNormOverRanks makes sumSq, this rank's part of the squared gradient
// norm when sharded, the whole: the parts are summed on the host in rank
// order. It waits for the device, but only on steps that compute the norm.
func (o *Optimizer) sumNormOverRanks() error {
	if !o.shard.sharded() {
		return nil
	}
	if err := o.needExchange(); err != nil {
		return err
	}
	part, err := o.be.Download(o.sumSq)
	if err != nil {
		return fmt.Errorf("gradient norm: %w", err)
	}
	v := []float64{float64(part[0])}
	if err := o.dp.SumHost(v); err != nil {
		return fmt.Errorf("gradient norm: %w", err)
	}
	return o.be.Upload(o.sumSq, []float32{float32(v[0])})
}

// shareWeights gives every rank the others' updated weights by one
// all-gather of the weight arena over the ranks' ranges (each rank has
// rounded its share of a master into its own range as it updated).
func (o *Optimizer) shareWeights() error {
	if err := o.needExchange(); err != nil {
		return err
	}
	if err := o.dp.AllGather(o.layout.Weights, o.shard.wBounds); err != nil {
		return fmt.Errorf("updated weights: %w", err)
	}
	return nil
}

// shardMaster gives a model built for this rank's share the fp32 master of
// the weights it updates.
func (o *Optimizer) shardMaster() error {
	z := o.shard
	if !o.layout.MasterPending {
		return nil
	}
	if !z.sharded() {
		return fmt.Errorf("optimizer: the model keeps a sharded master but the optimizer is not sharded")
	}
	w := z.wRange[z.rank]
	if err := o.model.AllocMaster(w[0], w[1]); err != nil {
		return err
	}
	o.layout = o.model.Layout()
	return nil
}

// masterSharded reports whether the model's master covers this rank's
// share only.
func (o *Optimizer) masterSharded() bool { return o.shard.sharded() && o.layout.Master != nil }

// Weights returns every weight as a checkpoint stores it (the fp32 master
// where the run keeps one) on rank root; other ranks get nil. With a
// sharded master every rank must call it: each param's master travels from
// its owner in chunks the size of the param's gradient (dead between steps),
// by broadcast, and the gradients are zeroed after.
func (o *Optimizer) Weights(root int) ([]model.NamedTensor, error) {
	z := o.shard
	if !o.masterSharded() {
		if z.rank != root {
			return nil, nil
		}
		return o.model.WeightTensors()
	}
	if err := o.needExchange(); err != nil {
		return nil, err
	}
	var out []model.NamedTensor
	for _, p := range o.layout.Params {
		owner := z.owner[p]
		var data []float32
		var shape []int
		var err error
		switch {
		case owner == root && z.rank == root:
			data, shape, err = o.model.ReadParam(p, p.Master)
		case owner != root:
			data, err = o.sendMaster(p, owner, root)
			shape = p.W.Shape
		}
		if err != nil {
			return nil, fmt.Errorf("master of %s from rank %d: %w", p.Name, owner, err)
		}
		if z.rank != root {
			continue
		}
		if owner != root {
			data, shape = p.HostParam(data, shape)
		}
		out = append(out, model.NamedTensor{Name: p.Name, Shape: shape, Data: data})
	}
	return out, nil
}

// sendMaster moves p's master from owner to root through p's gradient, one
// gradient-sized chunk at a time, and zeroes the gradient after; root gets
// the values (p.W's padded shape), the other ranks nil.
func (o *Optimizer) sendMaster(p *model.Param, owner, root int) ([]float32, error) {
	z, n := o.shard, p.W.Len()
	buf := flat(p.Grad)
	defer o.be.Zero(buf)
	var out []float32
	if z.rank == root {
		out = make([]float32, 0, n)
	}
	for off := 0; off < n; off += buf.Len() {
		chunk := buf.Rows(0, min(buf.Len(), n-off))
		if z.rank == owner {
			if err := o.be.Copy(chunk, flat(p.Master).Rows(off, off+chunk.Len())); err != nil {
				return nil, err
			}
		}
		if err := o.dp.Broadcast(chunk, owner); err != nil {
			return nil, err
		}
		if z.rank == root {
			v, err := o.be.Download(chunk)
			if err != nil {
				return nil, err
			}
			out = append(out, v...)
		}
	}
	return out, nil
}
