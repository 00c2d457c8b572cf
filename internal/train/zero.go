package train

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

// Zero values of train.zero.
const (
	ZeroOff   = 0 // every rank keeps the whole optimizer state
	ZeroState = 1 // ZeRO-1: the moments are sharded across the ranks
)

// Shard places an optimizer in a ZeRO-1 job: it keeps the state of rank
// Rank's share of World. World <= 1 is the whole state.
type Shard struct{ Rank, World int }

// shard is the Shard of rank of world under cfg's train.zero.
func (c Config) shard(rank, world int) Shard {
	if c.Train.Zero != ZeroState || world <= 1 {
		return Shard{}
	}
	return Shard{Rank: rank, World: world}
}

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
	segs             []model.Segment // the model's segments cut to this rank's params
}

// newZeroShard splits m's params among sh.World ranks and returns rank
// sh.Rank's share; the whole model for a one-rank shard.
func newZeroShard(m *model.Model, sh Shard) (*zeroShard, error) {
	world := max(sh.World, 1)
	order := m.ArenaOrder()
	if world > len(order) {
		return nil, fmt.Errorf("optimizer: train.zero = %d over %d ranks, but the model has only %d parameters to share out; set train.zero = 0", ZeroState, world, len(order))
	}
	if sh.Rank < 0 || sh.Rank >= world {
		return nil, fmt.Errorf("optimizer: shard rank %d of %d", sh.Rank, world)
	}
	// Each param's extent in both layouts runs to the next param's offset
	// (padding included), the last one's to the end of the arena.
	wEnd, gEnd := make([]int, len(order)), make([]int, len(order))
	sizes := make([]int64, len(order))
	for i, p := range order {
		wEnd[i], gEnd[i] = m.WeightArena().Len(), m.GradLen()
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
	// Cut each segment to the owned params (whole params, so both layouts
	// cut at param boundaries).
	lo, hi := z.gRange[sh.Rank][0], z.gRange[sh.Rank][1]
	for _, s := range m.Segments() {
		var cut model.Segment
		found := false
		for i, p := range order {
			if p.GradOff < max(lo, s.GradOff) || p.GradOff >= min(hi, s.GradOff+s.GLen) {
				continue
			}
			if !found {
				cut, found = s, true
				cut.Off, cut.GradOff = p.WOff, p.GradOff
			}
			cut.Len, cut.GLen = wEnd[i]-cut.Off, gEnd[i]-cut.GradOff
		}
		if found {
			z.segs = append(z.segs, cut)
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

// exchange is what an optimizer in a data-parallel job needs from the
// other ranks (dataParallel implements it).
type exchange interface {
	// reduce sums the gradients of ps over the ranks on every rank.
	reduce(ps []*model.Param) error
	// reduceTo sums p's gradient over the ranks into owner's.
	reduceTo(p *model.Param, owner int) error
	// reduceScatter sums m's gradient arena, rank r receiving range r.
	reduceScatter(m *model.Model, bounds []int) error
	// allGather gives every rank range r of t from rank r.
	allGather(t *gpu.Tensor, bounds []int) error
	// broadcast overwrites t on every rank with root's.
	broadcast(t *gpu.Tensor, root int) error
	// sumHost sums v over the ranks, in place.
	sumHost(v []float64) error
	// issue runs f (collectives through this exchange) concurrently with
	// the caller's later work (dist.Comm.Issue).
	issue(f func() error) dist.Pending
}

// setExchange puts the optimizer in a data-parallel job (nil: none).
func (o *Optimizer) setExchange(x exchange) { o.dp = x }

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
	return o.dp.reduceScatter(o.model, o.shard.gBounds)
}

// reduceGroup sums a fused group's gradients over the ranks: sharded, each
// param's into its owner only (a reduce-scatter, param by param); else into
// every rank.
func (o *Optimizer) reduceGroup(ps []*model.Param) error {
	if o.dp == nil {
		return nil
	}
	if !o.shard.sharded() {
		return o.dp.reduce(ps)
	}
	for _, p := range ps {
		if err := o.dp.reduceTo(p, o.shard.owner[p]); err != nil {
			return err
		}
	}
	return nil
}

// ownGrads is the part of the gradient arena whose sum this rank holds
// after the reduction: its range when sharded, else all of it.
func (z *zeroShard) ownGrads(m *model.Model) *gpu.Tensor {
	g := m.GradArena()
	if !z.sharded() {
		return g
	}
	return g.Rows(z.gRange[z.rank][0], z.gRange[z.rank][1])
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
	if err := o.dp.sumHost(v); err != nil {
		return fmt.Errorf("gradient norm: %w", err)
	}
	return o.be.Upload(o.sumSq, []float32{float32(v[0])})
}

// shareWeights gives every rank the others' updated weights by one
// all-gather over the ranks' ranges: of the bf16 weights, each rank first
// rounding its share of the master into them, when the master is sharded;
// else of the updated arena (the master, rounded after, where the run keeps
// an unsharded one).
func (o *Optimizer) shareWeights() error {
	if err := o.needExchange(); err != nil {
		return err
	}
	m := o.model
	if m.MasterSharded() {
		if err := m.SyncWeights(); err != nil {
			return err
		}
		if err := o.dp.allGather(m.WeightArena(), o.shard.wBounds); err != nil {
			return fmt.Errorf("updated weights: %w", err)
		}
		return nil
	}
	if err := o.dp.allGather(m.UpdateArena(), o.shard.wBounds); err != nil {
		return fmt.Errorf("updated weights: %w", err)
	}
	return m.SyncWeights()
}

// shardMaster gives a model built for this rank's share (newRankModel) the
// fp32 master of the weights it updates.
func (o *Optimizer) shardMaster() error {
	m, z := o.model, o.shard
	if !m.MasterPending() {
		return nil
	}
	if !z.sharded() {
		return fmt.Errorf("optimizer: the model keeps a sharded master but the optimizer is not sharded")
	}
	w := z.wRange[z.rank]
	return m.AllocMaster(w[0], w[1])
}

// Weights returns every weight as a checkpoint stores it (the fp32 master
// where the run keeps one) on rank root; other ranks get nil. With a
// sharded master every rank must call it: each param's master travels from
// its owner in chunks the size of the param's gradient (dead between steps),
// by broadcast, and the gradients are zeroed after.
func (o *Optimizer) Weights(root int) ([]model.NamedTensor, error) {
	m, z := o.model, o.shard
	if !m.MasterSharded() {
		if z.rank != root {
			return nil, nil
		}
		return m.WeightTensors()
	}
	if err := o.needExchange(); err != nil {
		return nil, err
	}
	var out []model.NamedTensor
	for _, p := range m.Params {
		owner := z.owner[p]
		var data []float32
		var shape []int
		var err error
		switch {
		case owner == root && z.rank == root:
			data, shape, err = m.ReadParam(p, p.Master)
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
	m.ZeroGrads()
	return out, nil
}

// sendMaster moves p's master from owner to root through p's gradient, one
// gradient-sized chunk at a time; root gets the values (p.W's padded
// shape), the other ranks nil.
func (o *Optimizer) sendMaster(p *model.Param, owner, root int) ([]float32, error) {
	z, n := o.shard, p.W.Len()
	buf := p.Grad.Reshape(p.Grad.Len())
	var out []float32
	if z.rank == root {
		out = make([]float32, 0, n)
	}
	for off := 0; off < n; off += buf.Len() {
		chunk := buf.Rows(0, min(buf.Len(), n-off))
		if z.rank == owner {
			if err := o.be.Copy(chunk, p.Master.Reshape(n).Rows(off, off+chunk.Len())); err != nil {
				return nil, err
			}
		}
		if err := o.dp.broadcast(chunk, owner); err != nil {
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

// Moments returns every param's moments (named as in optimizer.safetensors)
// on rank root; other ranks get nil. Sharded, every rank must call it: each
// moment travels from its owner by a broadcast through the param's gradient
// (dead between steps, and shaped like its moments), which is zeroed after.
func (o *Optimizer) Moments(root int) ([]model.NamedTensor, error) {
	m, z := o.model, o.shard
	if z.sharded() {
		if err := o.needExchange(); err != nil {
			return nil, err
		}
	}
	var out []model.NamedTensor
	for i, p := range m.Params {
		for j, suffix := range []string{".exp_avg", ".exp_avg_sq"} {
			src := o.M[i]
			if j == 1 {
				src = o.V[i]
			}
			owner := z.owner[p]
			if owner != root {
				if z.rank == owner {
					if err := o.be.Copy(p.Grad, src); err != nil {
						return nil, err
					}
				}
				if err := o.dp.broadcast(p.Grad, owner); err != nil {
					return nil, fmt.Errorf("moments of %s from rank %d: %w", p.Name, owner, err)
				}
				src = p.Grad
			}
			if z.rank != root {
				continue
			}
			data, shape, err := m.ReadParam(p, src)
			if err != nil {
				return nil, err
			}
			out = append(out, model.NamedTensor{Name: p.Name + suffix, Shape: shape, Data: data})
		}
	}
	if z.sharded() {
		m.ZeroGrads()
	}
	return out, nil
}
