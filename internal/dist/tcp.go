package dist

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/compact-llm/compact/internal/gpu"
)

// tcpComm runs the tensor collectives through rank 0 over the group's
// connections: tensors go to the host as float32, rank 0 sums them in rank
// order and sends the sum back. It is for the CPU backend and tests, where
// the bytes are few and reproducibility matters more than bandwidth.
type tcpComm struct {
	g  *group
	be gpu.Backend
}

func (c *tcpComm) Rank() int                 { return c.g.rank }
func (c *tcpComm) Size() int                 { return c.g.world }
func (c *tcpComm) SumHost(v []float64) error { return c.g.sumF64(v) }
func (c *tcpComm) Close() error              { return c.g.leave() }
func (c *tcpComm) Abort(cause error)         { c.g.abort(cause) }
func (c *tcpComm) Failed() <-chan struct{}   { return c.g.failed }
func (c *tcpComm) Err() error                { return c.g.err() }

func (c *tcpComm) AllReduce(t *gpu.Tensor) error {
	if c.g.world == 1 {
		return nil
	}
	v, err := c.be.Download(t)
	if err != nil {
		return fmt.Errorf("all-reduce %s: %w", t.Name, err)
	}
	out, err := c.g.allReduce(f32Bytes(v), func(acc, in []byte) error {
		for i := 0; i < len(acc); i += 4 {
			s := math.Float32frombits(binary.LittleEndian.Uint32(acc[i:])) + math.Float32frombits(binary.LittleEndian.Uint32(in[i:]))
			binary.LittleEndian.PutUint32(acc[i:], math.Float32bits(s))
		}
		return nil
	})
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
