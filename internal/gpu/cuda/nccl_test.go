//go:build linux && (amd64 || arm64)

package cuda

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/compact-llm/compact/internal/gpu"
)

// ncclRanks opens one communicator per visible GPU (up to 2), in this
// process, all joined on one id; it skips without a GPU or libnccl.so.2.
func ncclRanks(t *testing.T) ([]*Backend, []gpu.DeviceComm) {
	t.Helper()
	bes := []*Backend{cudaOrSkip(t)}
	if n, err := DeviceCount(); err == nil && n > 1 {
		if b, err := New(1); err == nil {
			t.Cleanup(func() { b.Close() })
			bes = append(bes, b)
		}
	}
	id, err := bes[0].NewCommID()
	if err != nil {
		t.Skipf("no NCCL: %v", err)
	}
	comms := make([]gpu.DeviceComm, len(bes))
	eachRank(t, len(bes), func(r int) error {
		var err error
		comms[r], err = bes[r].OpenComm(id, r, len(bes))
		return err
	})
	t.Cleanup(func() {
		eachRank(t, len(bes), func(r int) error { return errors.Join(comms[r].Drain(), comms[r].Close()) })
	})
	return bes, comms
}

// eachRank runs f for every rank concurrently (NCCL calls of one
// collective must all be in flight) and fails t with their errors.
func eachRank(t *testing.T, n int, f func(r int) error) {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Add(1)
		go func() { defer wg.Done(); errs[r] = f(r) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// The communicator's collectives against host sums: all-reduce in fp32 and
// bf16, broadcast bit for bit, reduce-scatter, all-gather and reduce over
// equal ranges (NCCL's own) and through the grouped path unequal ranges
// take, directly and issued on the side stream.
func TestNCCLDeviceComm(t *testing.T) {
	bes, comms := ncclRanks(t)
	world := len(bes)
	const size = 1 << 12
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([][]float32, world)
	for r := range data {
		data[r] = make([]float32, size)
		for i := range data[r] {
			data[r][i] = rng.Float32()*2 - 1
		}
	}
	sum := func(i int) float64 {
		var s float64
		for q := range data {
			s += float64(data[q][i])
		}
		return s
	}
	near := func(what string, got []float32, lo int, tol float64) error {
		for i, v := range got {
			if math.Abs(float64(v)-sum(lo+i)) > tol {
				return fmt.Errorf("%s: element %d is %g, want %g", what, lo+i, v, sum(lo+i))
			}
		}
		return nil
	}
	// run uploads rank r's data to a fresh tensor, applies op and returns
	// what the rank holds after it.
	run := func(r int, prec gpu.Precision, op func(c gpu.DeviceComm, x *gpu.Tensor) error) ([]float32, error) {
		be := bes[r]
		x, err := be.Alloc("x", gpu.Grads, prec, size)
		if err != nil {
			return nil, err
		}
		defer be.Free(x)
		if err := be.Upload(x, data[r]); err != nil {
			return nil, err
		}
		if err := op(comms[r], x); err != nil {
			return nil, err
		}
		return be.Download(x)
	}
	eachRank(t, world, func(r int) error {
		got, err := run(r, gpu.Full, func(c gpu.DeviceComm, x *gpu.Tensor) error { return c.AllReduce(x) })
		if err != nil {
			return err
		}
		if err := near("fp32 all-reduce", got, 0, 1e-6); err != nil {
			return err
		}
		// bf16: inputs and sum rounded to 8 bits.
		if got, err = run(r, gpu.Low, func(c gpu.DeviceComm, x *gpu.Tensor) error { return c.AllReduce(x) }); err != nil {
			return err
		}
		if err := near("bf16 all-reduce", got, 0, 0.02*float64(world)); err != nil {
			return err
		}
		root := world - 1
		if got, err = run(r, gpu.Full, func(c gpu.DeviceComm, x *gpu.Tensor) error { return c.Broadcast(x, root) }); err != nil {
			return err
		}
		for i := range got {
			if got[i] != data[root][i] {
				return fmt.Errorf("broadcast from rank %d, element %d: %g, want %g", root, i, got[i], data[root][i])
			}
		}
		return nil
	})
	cases := [][]int{{0, size}, {64, size - 64}}
	if world == 2 {
		cases = [][]int{{0, size / 2, size}, {64, 64 + 1000, 64 + 2000}, {0, 100, size - 8}}
	}
	for _, grouped := range []bool{false, true} {
		ncclGroupedOnly = grouped
		for _, b := range cases {
			for _, issued := range []bool{false, true} {
				// op makes the collective directly or issued on the side stream.
				op := func(f func(c gpu.DeviceComm, x *gpu.Tensor) error) func(c gpu.DeviceComm, x *gpu.Tensor) error {
					if !issued {
						return f
					}
					return func(c gpu.DeviceComm, x *gpu.Tensor) error {
						join, err := c.Issue(func() error { return f(c, x) })
						if err != nil {
							return err
						}
						return join()
					}
				}
				what := fmt.Sprintf("grouped %v, issued %v, ranges %v", grouped, issued, b)
				eachRank(t, world, func(r int) error {
					got, err := run(r, gpu.Full, op(func(c gpu.DeviceComm, x *gpu.Tensor) error { return c.ReduceScatter(x, b) }))
					if err != nil {
						return err
					}
					if err := near("reduce-scatter "+what, got[b[r]:b[r+1]], b[r], 1e-6); err != nil {
						return err
					}
					if got, err = run(r, gpu.Full, op(func(c gpu.DeviceComm, x *gpu.Tensor) error { return c.AllGather(x, b) })); err != nil {
						return err
					}
					for q := range world {
						for i := b[q]; i < b[q+1]; i++ {
							if got[i] != data[q][i] {
								return fmt.Errorf("all-gather %s on rank %d: element %d is %g, rank %d has %g", what, r, i, got[i], q, data[q][i])
							}
						}
					}
					if got, err = run(r, gpu.Full, op(func(c gpu.DeviceComm, x *gpu.Tensor) error { return c.Reduce(x, 0) })); err != nil {
						return err
					}
					if r == 0 {
						return near("reduce "+what, got, 0, 1e-6)
					}
					return nil
				})
			}
		}
	}
	ncclGroupedOnly = false
}
