package train

// Data-parallel training (issue 13). Every rank holds the whole model and
// takes the same steps: weights start from the same seed, projections and
// stochastic rounding are drawn from the same Philox streams, and every
// rank applies the same summed gradient, so the weights stay identical
// (with train.zero 0, without ever being sent; under ZeRO-1 each rank
// updates its share and all-gathers the others', internal/optim/zero.go).
// A step's global batch is micro_batch x grad_accum x world: rank r takes
// micro-batches r, r+W, r+2W, ... of the one global stream (strideSource),
// the loss is scaled by the global count of valid targets, and the gradients are summed over the ranks. That is
// exactly the step one process would take with grad_accum x world, up to
// float summation order; and since the loader's position counts global
// micro-batches, a checkpoint resumes on any number of ranks.
//
// Compressed params are reduced in r-space: their gradient is the
// (rows, r) CompAct gradient, r/n of a full-rank one's bytes.

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/compact-llm/compact/internal/data"

	"slices"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/dist"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/device"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/optim"
)

// dataParallel is a trainer's place in a data-parallel job; nil in a plain
// run, and every method is then a no-op.
type dataParallel struct {
	comm  dist.Comm
	be    gpu.Backend
	bytes CommBytes // of the last step
	done  bool      // left the job
}

// CommBytes counts one step's collective payloads: each collective's
// tensor bytes once (per-rank wire traffic of a ring: 2(W-1)/W of it for an
// all-reduce, (W-1)/W for a reduce-scatter or an all-gather).
type CommBytes struct {
	// Gradients all-reduced (train.zero 0).
	Total int64 `json:"allreduce_bytes"`
	// Gradients reduce-scattered, each rank receiving its share's sum only
	// (ZeRO-1, internal/optim/zero.go).
	ReduceScatter int64 `json:"reduce_scatter_bytes,omitempty"`
	// Block weights: the gradients of the transformer blocks' linear layers,
	// whichever collective sums them, split into those exchanged in r-space
	// (CompAct) and at full rank.
	BlockCompressed int64 `json:"allreduce_block_compressed_bytes"`
	BlockFull       int64 `json:"allreduce_block_full_bytes"`
	// ZeRO-1: the updated weights every rank gathers from the others.
	AllGather int64 `json:"allgather_bytes,omitempty"`
	// Moments or weights broadcast (checkpoint gathers).
	Broadcast int64 `json:"broadcast_bytes,omitempty"`
}

func (d *dataParallel) rank() int {
	if d == nil {
		return 0
	}
	return d.comm.Rank()
}

func (d *dataParallel) world() int {
	if d == nil {
		return 1
	}
	return d.comm.Size()
}

// openBackend opens the device of this rank: CUDA device LOCAL_RANK in a
// job (every rank sees every GPU, which NCCL needs to find the fast paths),
// else what device.Open gives.
func openBackend(cfg config.Config, env *dist.Env) (gpu.Backend, string, error) {
	if testBackend != nil {
		return testBackend(), "test backend", nil
	}
	ordinal := 0
	if env != nil {
		ordinal = env.LocalRank
	}
	return device.OpenOrdinal(cfg.Train.Device, cfg.Train.Threads, ordinal)
}

// testBackend, when set (by tests only), opens every rank's backend instead
// of the configured device: the CPU with an fp32 master copy, say, which no
// real CPU run keeps.
var testBackend func() gpu.Backend

// joinJob meets the other ranks once the backend is open. Ranks that
// disagree on o.Identity are refused (bad input: every rank must run the
// same configuration on the same data).
func joinJob(env *dist.Env, be gpu.Backend, o dist.Options) (*dataParallel, error) {
	if env == nil {
		return nil, nil
	}
	c, err := dist.Join(*env, be, o)
	var mismatch *dist.MismatchError
	if errors.As(err, &mismatch) {
		return nil, &config.UsageError{Err: fmt.Errorf("data-parallel %s: %w", env, err)}
	}
	if err != nil {
		return nil, fmt.Errorf("data-parallel %s: %w", env, err)
	}
	return &dataParallel{comm: c, be: be}, nil
}

// jobOptions is what this rank brings to the job: its identity (the
// resolved configuration, the data it reads and the checkpoint it resumes
// from), the stall limit (train.comm_timeout) and where rendezvous notices
// go (log: every rank's own, which the launcher prefixes).
func (t *Trainer) jobOptions(log io.Writer, resumeFrom string) dist.Options {
	return dist.Options{Identity: jobIdentity(t.cfg, t.state.TrainFiles, t.state.ValFiles, resumeFrom),
		Stall: time.Duration(t.cfg.Train.CommTimeout) * time.Second, StallName: "train.comm_timeout", Log: log}
}

// identityFree are the keys ranks may set differently: the host's threads,
// the stall limit, and the device name (the backend actually opened is
// compared instead).
var identityFree = []string{"train.threads", "train.comm_timeout", "train.device"}

// jobIdentity is what every rank of a job must agree on, key by key: every
// configuration key but identityFree, the data keys as the content they
// name (so copies at other paths agree, and different files at one path do
// not), and the checkpoint resumed from.
func jobIdentity(cfg config.Config, trainFiles, valFiles []string, resumeFrom string) map[string]string {
	id := map[string]string{}
	for k, v := range cfg.Values() {
		if !slices.Contains(identityFree, k) {
			id[k] = fmt.Sprint(v)
		}
	}
	files := func(named []string, globs []string) []string {
		if len(named) > 0 {
			return named
		}
		if f, err := data.ExpandGlobs(globs); err == nil { // JSONL tasks: the files themselves
			return f
		}
		return nil
	}
	if f := files(trainFiles, cfg.Data.Train); f != nil {
		id["data.train"] = filesIdentity(f)
	}
	if f := files(valFiles, cfg.Data.Val); f != nil {
		id["data.val"] = filesIdentity(f)
	}
	id["resume"] = "none"
	if resumeFrom != "" {
		id["resume"] = filepath.Base(resumeFrom)
	}
	return id
}

// filesIdentity names data files by content: each one's base name, size
// and a hash of its first and last 64 KiB (cheap for shards of any size,
// and what a different tokenization or a truncated copy changes).
func filesIdentity(paths []string) string {
	parts := make([]string, len(paths))
	for i, p := range paths {
		parts[i] = filepath.Base(p) + " " + fileDigest(p)
	}
	return strings.Join(parts, ", ")
}

func fileDigest(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unreadable"
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "unreadable"
	}
	const edge = 64 << 10
	h := sha256.New()
	io.Copy(h, io.LimitReader(f, edge))
	if st.Size() > edge {
		f.Seek(max(edge, st.Size()-edge), io.SeekStart)
		io.Copy(h, f)
	}
	return fmt.Sprintf("(%d bytes, %x)", st.Size(), h.Sum(nil)[:6])
}

// rankSource wraps the training stream so this rank reads its micro-batches.
func rankSource(s Batches, env *dist.Env) Batches {
	if env == nil || env.World == 1 {
		return s
	}
	return &strideSource{Batches: s, rank: env.Rank, world: env.World}
}

// strideSource hands rank r batch r of every world consecutive batches of
// the global stream. The stream's position (saved in checkpoints) is the
// same on every rank and means the same whatever the world size.
type strideSource struct {
	Batches
	rank, world int
}

func (s *strideSource) Next() (in, tg []int32, err error) {
	for i := range s.world {
		a, b, err := s.Batches.Next()
		if err != nil {
			return nil, nil, err
		}
		if i == s.rank {
			in, tg = a, b
		}
	}
	return in, tg, nil
}

// agreeStop makes every rank stop at the same step boundary: a rank whose
// context was cancelled stops them all (a rank that leaves alone would
// strand the others in the next collective).
func (d *dataParallel) agreeStop(local bool) (bool, error) {
	if d == nil {
		return local, nil
	}
	v := []float64{0}
	if local {
		v[0] = 1
	}
	if err := d.comm.SumHost(v); err != nil {
		return false, err
	}
	return v[0] > 0, nil
}

// sum adds x over the ranks (exact for counts below 2^53).
func (d *dataParallel) sum(x float64) (float64, error) {
	if d == nil {
		return x, nil
	}
	v := []float64{x}
	err := d.comm.SumHost(v)
	return v[0], err
}

// The optim.Exchange of a rank: every collective counts its bytes.
var _ optim.Exchange = (*dataParallel)(nil)

// Reduce sums the gradients of ps over the ranks and counts the bytes.
func (d *dataParallel) Reduce(ps []*model.Param) error {
	for _, p := range ps {
		if err := d.comm.AllReduce(p.Grad); err != nil {
			return fmt.Errorf("gradient of %s: %w", p.Name, err)
		}
		d.count(p, &d.bytes.Total)
	}
	return nil
}

// ReduceTo sums p's gradient over the ranks into owner's: the reduce-scatter
// of a fused group, one param at a time.
func (d *dataParallel) ReduceTo(p *model.Param, owner int) error {
	if err := d.comm.Reduce(p.Grad, owner); err != nil {
		return fmt.Errorf("gradient of %s to rank %d: %w", p.Name, owner, err)
	}
	d.count(p, &d.bytes.ReduceScatter)
	return nil
}

// ReduceScatter sums the gradient arena grads of ps over the ranks, rank r
// receiving range r of bounds, and counts every param's bytes.
func (d *dataParallel) ReduceScatter(grads *gpu.Tensor, ps []*model.Param, bounds []int) error {
	if err := d.comm.ReduceScatter(grads, bounds); err != nil {
		return fmt.Errorf("gradients: %w", err)
	}
	for _, p := range ps {
		d.count(p, &d.bytes.ReduceScatter)
	}
	return nil
}

// AllGather gives every rank range r of t from rank r and counts the bytes.
func (d *dataParallel) AllGather(t *gpu.Tensor, bounds []int) error {
	if err := d.comm.AllGather(t, bounds); err != nil {
		return err
	}
	d.bytes.AllGather += int64(bounds[len(bounds)-1]-bounds[0]) * elemBytes(d.be, t.Prec)
	return nil
}

// Broadcast overwrites t on every rank with root's and counts the bytes.
func (d *dataParallel) Broadcast(t *gpu.Tensor, root int) error {
	if err := d.comm.Broadcast(t, root); err != nil {
		return err
	}
	d.bytes.Broadcast += int64(t.Len()) * elemBytes(d.be, t.Prec)
	return nil
}

// Issue runs f's collectives concurrently with the caller's later work.
func (d *dataParallel) Issue(f func() error) dist.Pending {
	return d.comm.Issue(func(dist.Comm) error { return f() })
}

// SumHost sums v over the ranks in rank order, in place.
func (d *dataParallel) SumHost(v []float64) error { return d.comm.SumHost(v) }

// reduceArena sums the whole gradient arena (unfused, unsharded): one
// all-reduce per update-class segment, the buckets being a few large
// contiguous ranges.
func (d *dataParallel) reduceArena(m *model.Model) error {
	lay := m.Layout()
	g := lay.Grads
	for _, s := range lay.Segments {
		if err := d.comm.AllReduce(g.Rows(s.GradOff, s.GradOff+s.GLen)); err != nil {
			return fmt.Errorf("gradients: %w", err)
		}
	}
	for _, p := range m.Params {
		d.count(p, &d.bytes.Total)
	}
	return nil
}

// count adds p's gradient bytes to total and to the block counts.
func (d *dataParallel) count(p *model.Param, total *int64) {
	n := int64(p.Grad.Len()) * elemBytes(d.be, p.Grad.Prec)
	*total += n
	if p.Layer >= 0 && len(p.W.Shape) == 2 {
		if p.Compressed() {
			d.bytes.BlockCompressed += n
		} else {
			d.bytes.BlockFull += n
		}
	}
}

// elemBytes is what one element of precision p takes on be.
func elemBytes(be gpu.Backend, p gpu.Precision) int64 {
	low, full := device.Footprint(be.Name()).ElementBytes()
	switch p {
	case gpu.Low:
		return low
	case gpu.Full:
		return full
	}
	return 4
}

// beginStep resets the byte count for step.
func (d *dataParallel) beginStep(step int) {
	if d != nil {
		d.bytes = CommBytes{}
		d.maybeKillSelf(step)
	}
}

// checkSame compares a hash of the weights across the ranks: they must be
// identical, since every rank applies the same update. Cheap next to a
// checkpoint, which reads the weights anyway.
func (d *dataParallel) checkSame(m *model.Model) error {
	if d == nil || d.world() == 1 {
		return nil
	}
	h := fnv.New64a()
	for _, p := range m.Params {
		w, err := d.be.Download(p.W)
		if err != nil {
			return err
		}
		var b [4]byte
		for _, x := range w {
			u := math.Float32bits(x)
			b[0], b[1], b[2], b[3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
			h.Write(b[:])
		}
	}
	// Equal on every rank iff sum(x) = W x and sum(x^2) = W x^2 (x < 2^20,
	// so the sums are exact).
	x := float64(h.Sum64() & (1<<20 - 1))
	v := []float64{x, x * x}
	if err := d.comm.SumHost(v); err != nil {
		return err
	}
	w := float64(d.world())
	if v[0] != w*x || v[1] != w*x*x {
		return fmt.Errorf("data-parallel: the weights of rank %d differ from another rank's (a nondeterministic kernel or a skipped all-reduce)", d.rank())
	}
	return nil
}

// finish leaves the job: cleanly after a successful run, else telling the
// other ranks this one failed.
func (d *dataParallel) finish(err error) error {
	if d == nil || d.done {
		return err
	}
	d.done = true
	if err != nil && !errors.Is(err, ErrInterrupted) { // every rank agreed on an interrupt
		d.comm.Abort(err)
		return err
	}
	if cerr := d.comm.Close(); err == nil {
		err = cerr
	}
	return err
}

// sameGlobalBatch lets a checkpoint resume on another number of ranks: when
// its grad_accum x world equals the new grad_accum x world, the global
// batch (and so the run) is unchanged, and the saved grad_accum is read as
// the new one for the config comparison.
func sameGlobalBatch(st *checkpoint.TrainerState, now config.Config, env *dist.Env) {
	was, is := max(st.World, 1), 1
	if env != nil {
		is = env.World
	}
	if st.Config.Train.GradAccum*was == now.Train.GradAccum*is {
		st.Config.Train.GradAccum = now.Train.GradAccum
	}
}
