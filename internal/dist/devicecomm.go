package dist

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
)

// deviceComm is a job's Comm on a backend with its own collectives (CUDA:
// NCCL): the tensor collectives run on the device, the group carries the
// rendezvous (the communicator's id), liveness and the host sums.
type deviceComm struct {
	g  *group
	dc gpu.DeviceComm
}

// joinDevice meets the other ranks, handing rank 0's communicator id to
// each, and opens the device communicator.
func joinDevice(e Env, be gpu.Collectives, o Options) (Comm, error) {
	var id []byte
	if e.Rank == 0 {
		var err error
		if id, err = be.NewCommID(); err != nil {
			return nil, err
		}
	}
	g, id, err := joinGroup(e, id, o)
	if err != nil {
		return nil, err
	}
	// Armed first: opening waits for every rank, and a rank that dies or
	// stalls meanwhile would leave this one blocked in it.
	watchdog(g)
	dc, err := be.OpenComm(id, e.Rank, e.World)
	if err != nil {
		g.abort(err)
		return nil, fmt.Errorf("rank %d: %w", e.Rank, err)
	}
	// A dead peer leaves the device's collectives spinning: abort the
	// communicator so the queue drains and the rank can report instead of
	// hanging.
	g.hook(func(error) { dc.Abort() })
	if err := g.err(); err != nil { // failed while opening: the hook came late
		dc.Abort()
	}
	return &deviceComm{g: g, dc: dc}, nil
}

func (c *deviceComm) Rank() int                 { return c.g.rank }
func (c *deviceComm) Size() int                 { return c.g.world }
func (c *deviceComm) SumHost(v []float64) error { return c.g.sumF64(v) }
func (c *deviceComm) Failed() <-chan struct{}   { return c.g.failed }
func (c *deviceComm) Err() error                { return c.g.err() }

// run makes one device collective unless the group has failed; a failure
// elsewhere, seen after it, is the cause of whatever it returned.
func (c *deviceComm) run(f func() error) error {
	if err := c.g.err(); err != nil {
		return err
	}
	err := f()
	if gerr := c.g.err(); gerr != nil {
		return gerr
	}
	return err
}

func (c *deviceComm) AllReduce(t *gpu.Tensor) error {
	return c.run(func() error { return c.dc.AllReduce(t) })
}

func (c *deviceComm) Broadcast(t *gpu.Tensor, root int) error {
	return c.run(func() error { return c.dc.Broadcast(t, root) })
}

func (c *deviceComm) Reduce(t *gpu.Tensor, root int) error {
	return c.run(func() error { return c.dc.Reduce(t, root) })
}

func (c *deviceComm) ReduceScatter(t *gpu.Tensor, bounds []int) error {
	if err := checkBounds(t, bounds, c.g.world); err != nil {
		return err
	}
	return c.run(func() error { return c.dc.ReduceScatter(t, bounds) })
}

func (c *deviceComm) AllGather(t *gpu.Tensor, bounds []int) error {
	if err := checkBounds(t, bounds, c.g.world); err != nil {
		return err
	}
	return c.run(func() error { return c.dc.AllGather(t, bounds) })
}

// devicePending is an issued collective: join orders the compute stream
// after it.
type devicePending struct {
	c    *deviceComm
	join func() error
	err  error
}

func (p *devicePending) Wait() error {
	if p.err != nil {
		return p.err
	}
	if err := p.join(); err != nil {
		return err
	}
	return p.c.g.err()
}

// Issue queues f's collectives on the communicator's own stream; the
// collectives f makes through the Comm it is given go there.
func (c *deviceComm) Issue(f func(Comm) error) Pending {
	join, err := c.dc.Issue(func() error { return f(c) })
	return &devicePending{c: c, join: join, err: err}
}

// Close waits for the device's queue, leaves the group and destroys the
// communicator (aborts it when the group failed meanwhile).
func (c *deviceComm) Close() error {
	derr := c.dc.Drain()
	gerr := c.g.leave()
	if c.g.err() != nil {
		c.dc.Abort()
	} else if err := c.dc.Close(); err != nil && derr == nil {
		derr = err
	}
	if derr != nil {
		return derr
	}
	return gerr
}

func (c *deviceComm) Abort(cause error) {
	c.g.abort(cause)
	c.dc.Abort()
}
