package dist

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/compact-llm/compact/internal/gpu"
)

// tcpComm runs the tensor collectives through rank 0 over the group's
// connections: tensors go to the host as float32, rank 0 sums them in rank
// order and sends the sum back. It is for the CPU backend and tests, where
// the bytes are few and reproducibility matters more than bandwidth.
type tcpComm struct {
	g  *group
	be gpu.Backend
	// jobs feeds the goroutine that runs issued collectives in order
	// (started by the first Issue).
	jobs     chan func()
	startJob sync.Once
}

// tcpPending is an issued collective: done closes once it ran.
type tcpPending struct {
	done chan struct{}
	err  error
}

func (p *tcpPending) Wait() error {
	<-p.done
	return p.err
}

// Issue runs f on the comm's goroutine, after every collective issued
// before it: the exchange overlaps the caller's compute (the CPU backend's
// transfers touch only the tensors named, which the caller leaves alone
// until Wait).
func (c *tcpComm) Issue(f func(Comm) error) Pending {
	c.startJob.Do(func() {
		c.jobs = make(chan func(), 4)
		go func() {
			for j := range c.jobs {
				j()
			}
		}()
	})
	p := &tcpPending{done: make(chan struct{})}
	c.jobs <- func() {
		defer close(p.done)
		p.err = f(c)
	}
	return p
}

func (c *tcpComm) Rank() int                 { return c.g.rank }
func (c *tcpComm) Size() int                 { return c.g.world }
func (c *tcpComm) SumHost(v []float64) error { return c.g.sumF64(v) }
func (c *tcpComm) Close() error              { c.stopJobs(); return c.g.leave() }
func (c *tcpComm) Abort(cause error)         { c.g.abort(cause); c.stopJobs() }

// stopJobs ends the issue goroutine once the jobs queued have run (each
// fails at once when the group has failed).
func (c *tcpComm) stopJobs() {
	c.startJob.Do(func() {}) // no goroutine if none was started
	if c.jobs != nil {
		close(c.jobs)
		c.jobs = nil
	}
}
func (c *tcpComm) Failed() <-chan struct{} { return c.g.failed }
func (c *tcpComm) Err() error              { return c.g.err() }

func (c *tcpComm) AllReduce(t *gpu.Tensor) error {
	if c.g.world == 1 {
		return nil
	}
	v, err := c.be.Download(t)
	if err != nil {
		return fmt.Errorf("all-reduce %s: %w", t.Name, err)
	}
	out, err := c.g.allReduce(f32Bytes(v), addF32)
	if err != nil {
		return fmt.Errorf("all-reduce %s: %w", t.Name, err)
	}
	return c.be.Upload(t, bytesF32(out, v))
}

func (c *tcpComm) Broadcast(t *gpu.Tensor, root int) error {
	if c.g.world == 1 {
		return nil
	}
	var msg []byte
	var v []float32
	if c.g.rank == root {
		var err error
		if v, err = c.be.Download(t); err != nil {
			return fmt.Errorf("broadcast %s: %w", t.Name, err)
		}
		msg = f32Bytes(v)
	}
	out, err := c.g.broadcast(msg, root)
	if err != nil {
		return fmt.Errorf("broadcast %s from rank %d: %w", t.Name, root, err)
	}
	if c.g.rank == root {
		return nil
	}
	if len(out) != 4*t.Len() {
		return fmt.Errorf("broadcast %s from rank %d: %d bytes for %d elements", t.Name, root, len(out), t.Len())
	}
	return c.be.Upload(t, bytesF32(out, make([]float32, t.Len())))
}

// addF32 adds the float32s of in to those of acc, element by element.
func addF32(acc, in []byte) error {
	for i := 0; i < len(acc); i += 4 {
		s := math.Float32frombits(binary.LittleEndian.Uint32(acc[i:])) + math.Float32frombits(binary.LittleEndian.Uint32(in[i:]))
		binary.LittleEndian.PutUint32(acc[i:], math.Float32bits(s))
	}
	return nil
}

func (c *tcpComm) Reduce(t *gpu.Tensor, root int) error {
	if c.g.world == 1 {
		return nil
	}
	v, err := c.be.Download(t)
	if err != nil {
		return fmt.Errorf("reduce %s: %w", t.Name, err)
	}
	out, err := c.g.reduce(f32Bytes(v), root, addF32)
	if err != nil {
		return fmt.Errorf("reduce %s to rank %d: %w", t.Name, root, err)
	}
	if c.g.rank != root {
		return nil
	}
	return c.be.Upload(t, bytesF32(out, v))
}

// ReduceScatter sends the whole tensor to rank 0 and gets back only this
// rank's range of the sum: half an all-reduce's bytes on the way back.
func (c *tcpComm) ReduceScatter(t *gpu.Tensor, bounds []int) error {
	if err := checkBounds(t, bounds, c.g.world); err != nil {
		return err
	}
	if c.g.world == 1 {
		return nil
	}
	v, err := c.be.Download(t)
	if err != nil {
		return fmt.Errorf("reduce-scatter %s: %w", t.Name, err)
	}
	b := make([]int, len(bounds))
	for i, x := range bounds {
		b[i] = 4 * x
	}
	out, err := c.g.reduceScatter(f32Bytes(v), b, addF32)
	if err != nil {
		return fmt.Errorf("reduce-scatter %s: %w", t.Name, err)
	}
	lo, hi := bounds[c.g.rank], bounds[c.g.rank+1]
	if len(out) != 4*(hi-lo) {
		return fmt.Errorf("reduce-scatter %s: %d bytes for %d elements", t.Name, len(out), hi-lo)
	}
	return c.be.Upload(flat(t).Rows(lo, hi), bytesF32(out, make([]float32, hi-lo)))
}

func (c *tcpComm) AllGather(t *gpu.Tensor, bounds []int) error {
	if err := checkBounds(t, bounds, c.g.world); err != nil {
		return err
	}
	if c.g.world == 1 {
		return nil
	}
	lo, hi := bounds[c.g.rank], bounds[c.g.rank+1]
	own, err := c.be.Download(flat(t).Rows(lo, hi))
	if err != nil {
		return fmt.Errorf("all-gather %s: %w", t.Name, err)
	}
	n := make([]int, c.g.world)
	for r := range n {
		n[r] = 4 * (bounds[r+1] - bounds[r])
	}
	out, err := c.g.allGather(f32Bytes(own), n)
	if err != nil {
		return fmt.Errorf("all-gather %s: %w", t.Name, err)
	}
	all := flat(t).Rows(bounds[0], bounds[len(bounds)-1])
	return c.be.Upload(all, bytesF32(out, make([]float32, all.Len())))
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// bytesF32 decodes b into dst (len(b)/4 elements) and returns it.
func bytesF32(b []byte, dst []float32) []float32 {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return dst
}
