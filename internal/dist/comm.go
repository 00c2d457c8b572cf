package dist

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"time"

	"github.com/compact-llm/compact/internal/gpu"
)

// Comm is one rank's handle on the job's collectives. Every rank calls the
// same collectives in the same order with tensors of the same length.
// Tensor collectives work in the tensor's own storage and precision (fp32
// for Full, bf16 on CUDA for Low).
type Comm interface {
	Rank() int
	Size() int
	// AllReduce sums t over the ranks, in place.
	AllReduce(t *gpu.Tensor) error
	// Broadcast overwrites t on every rank with root's t.
	Broadcast(t *gpu.Tensor, root int) error
	// Reduce sums t over the ranks into root's t; the other ranks' t is
	// left as it was.
	Reduce(t *gpu.Tensor, root int) error
	// ReduceScatter sums t over the ranks and leaves on each rank r only
	// its range [bounds[r], bounds[r+1]) of the sum (the rest of t is
	// undefined after it): half an all-reduce's traffic. bounds has Size()+1 ascending
	// element offsets into t (flattened).
	ReduceScatter(t *gpu.Tensor, bounds []int) error
	// AllGather overwrites range r of t on every rank (bounds as for
	// ReduceScatter) with rank r's.
	AllGather(t *gpu.Tensor, bounds []int) error
	// Issue queues the collectives f makes (through the Comm it is given)
	// to run concurrently with the caller's later work, after the work
	// queued so far, in issue order: on CUDA on the communicator's own
	// stream, on the CPU on a goroutine. Every issued collective must be
	// waited for before the next one made directly on the Comm, and before
	// anything reads or writes the tensors it uses.
	Issue(f func(Comm) error) Pending
	// SumHost sums a few host numbers over the ranks in rank order, in
	// place; nil is a barrier.
	SumHost(v []float64) error
	// Close leaves the job cleanly once every rank calls it.
	Close() error
	// Abort tells the other ranks this one failed (naming cause) and tears
	// the communicator down without waiting for anyone.
	Abort(cause error)
	// Failed is closed when any rank failed; Err then says which and why.
	Failed() <-chan struct{}
	Err() error
}

// Pending is a collective Issue queued.
type Pending interface {
	// Wait orders the caller's later work after the collective and returns
	// its error (on CUDA the compute stream waits for the communicator's;
	// the host does not block).
	Wait() error
}

// Join meets the other ranks of e and returns the communicator for be: the
// backend's own collectives where it has them (gpu.Collectives: NCCL on
// CUDA), else TCP through rank 0 (the CPU). A one-rank Env gets a
// communicator that does nothing (the device's still runs, so `--gpus 1`
// exercises the same path as N).
func Join(e Env, be gpu.Backend, o Options) (Comm, error) {
	if e.World < 1 || e.Rank < 0 || e.Rank >= e.World {
		return nil, fmt.Errorf("dist: rank %d of world %d", e.Rank, e.World)
	}
	// Ranks on different kinds of device would meet in different
	// collectives (NCCL, TCP) and wait for each other forever.
	o.Identity = maps.Clone(o.Identity)
	if o.Identity == nil {
		o.Identity = map[string]string{}
	}
	o.Identity["backend"] = be.Name()
	if c, ok := be.(gpu.Collectives); ok {
		return joinDevice(e, c, o)
	}
	g, _, err := joinGroup(e, nil, o)
	if err != nil {
		return nil, err
	}
	return &tcpComm{g: g, be: be}, nil
}

// Options are what a rank brings to the job besides its place in it.
type Options struct {
	// Identity is what every rank must agree on, key by key: the resolved
	// configuration and the identity of the data. Rank 0 compares a hash of
	// each rank's with its own at the rendezvous and refuses the job
	// (MismatchError on every rank) naming the keys that differ. Join adds
	// the backend's name ("backend").
	Identity map[string]string
	// Stall is how long a peer may send nothing, heartbeats included,
	// before the job ends naming it (StallError); 0: never. StallName
	// names the setting in that message.
	Stall     time.Duration
	StallName string
	// Log receives the rendezvous's progress while a rank waits for the
	// others; nil: none.
	Log io.Writer
}

// MismatchError is a job refused at the rendezvous: its ranks disagree on
// their configuration (Options.Identity) or on the job's shape. It is bad
// input, not a failed run.
type MismatchError struct{ Msg string }

func (e *MismatchError) Error() string { return e.Msg }

// StallError is a peer from which nothing arrived for the stall limit:
// stopped (kill -STOP), frozen, or cut off.
type StallError struct {
	Rank    int
	After   time.Duration
	Setting string
}

func (e *StallError) Error() string {
	s := fmt.Sprintf("rank %d made no progress for %s: nothing arrived from it, not even its heartbeat (stopped, e.g. by kill -STOP, frozen, or cut off); ending the job", e.Rank, e.After)
	if e.Setting != "" {
		s += " (" + e.Setting + " sets the limit)"
	}
	return s
}

// checkBounds refuses ranges that are not world ascending runs inside t:
// every rank must pass the same, or the collective would hang.
func checkBounds(t *gpu.Tensor, b []int, world int) error {
	if len(b) != world+1 {
		return fmt.Errorf("collective on %s: %d bounds for %d ranks", t.Name, len(b), world)
	}
	if b[0] < 0 || b[world] > t.Len() {
		return fmt.Errorf("collective on %s: ranges [%d, %d) outside its %d elements", t.Name, b[0], b[world], t.Len())
	}
	for r := range world {
		if b[r+1] < b[r] {
			return fmt.Errorf("collective on %s: range of rank %d is [%d, %d)", t.Name, r, b[r], b[r+1])
		}
	}
	return nil
}

// flat is t as one row of elements, for element ranges.
func flat(t *gpu.Tensor) *gpu.Tensor { return t.Reshape(t.Len()) }

// HangExit, when positive, is how long a rank may stay alive after the
// group failed before the process exits with status 1: a rank blocked inside
// a device collective whose peer died may never return on its own.
var HangExit time.Duration

// watchdog arms HangExit on g.
func watchdog(g *group) {
	if HangExit <= 0 {
		return
	}
	g.hook(func(err error) {
		go func() {
			time.Sleep(HangExit)
			fmt.Fprintf(os.Stderr, "compact: rank %d: %v; still blocked after %s, exiting\n", g.rank, err, HangExit)
			os.Exit(1)
		}()
	})
}

// PeerError is the group's failure as the other ranks see it: some rank
// died or aborted, and this rank stops because of it.
type PeerError struct{ Cause error }

func (e *PeerError) Error() string { return e.Cause.Error() }
func (e *PeerError) Unwrap() error { return e.Cause }

// ExitPeerFailed is the exit status of a rank that stopped because another
// failed; the launcher reports the rank that failed first on its own.
const ExitPeerFailed = 75

// IsPeerFailure reports whether err is (or wraps) another rank's failure.
func IsPeerFailure(err error) bool {
	var pe *PeerError
	return errors.As(err, &pe)
}
