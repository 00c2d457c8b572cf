package dist

import (
	"math"
	"testing"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cuda"
)

// TestNCCLCollectives runs one rank per visible GPU (up to 2) in this
// process, each on its own device, and checks the all-reduce against the
// host sum and the broadcast bit for bit, in fp32 and bf16. It skips
// without a GPU or without libnccl.so.2.
func TestNCCLCollectives(t *testing.T) {
	bes := ncclDevices(t)
	world := len(bes)
	const size = 1 << 16
	data := randomRanks(world, size, 3, 4)
	got := make([][2][]float32, world)
	err := InProcess(world, func(e Env) error {
		r, be := e.Rank, bes[e.Rank]
		c, err := Join(e, be)
		if err != nil {
			return err
		}
		defer c.Close()
		for i, prec := range []gpu.Precision{gpu.Full, gpu.Low} {
			x, err := be.Alloc("x", gpu.Grads, prec, size)
			if err != nil {
				return err
			}
			be.Upload(x, data[r])
			if err := c.AllReduce(x); err != nil {
				return err
			}
			if got[r][i], err = be.Download(x); err != nil {
				return err
			}
			be.Free(x)
		}
		y, err := be.Alloc("y", gpu.Grads, gpu.Full, size)
		if err != nil {
			return err
		}
		defer be.Free(y)
		return checkBroadcast(be, c, y, data, world-1)
	})
	if err != nil {
		t.Fatal(err)
	}
	for r := range world {
		for i := 0; i < size; i++ {
			var want float64
			for q := range world {
				want += float64(data[q][i])
			}
			// fp32: exact to float rounding; bf16: inputs and sum rounded to 8 bits.
			if d := math.Abs(float64(got[r][0][i]) - want); d > 1e-6 {
				t.Fatalf("rank %d fp32 element %d: %g, want %g", r, i, got[r][0][i], want)
			}
			if d := math.Abs(float64(got[r][1][i]) - want); d > 0.02*float64(world) {
				t.Fatalf("rank %d bf16 element %d: %g, want %g", r, i, got[r][1][i], want)
			}
		}
	}
}

// TestNCCLScatterGather checks ReduceScatter, AllGather and Reduce through
// Join's communicator, and collectives issued on the communicator's side
// stream (Issue), on one rank per visible GPU (up to 2; one is enough to
// run every call). The NCCL binding's own paths (native and grouped) are
// checked in internal/gpu/cuda (TestNCCLDeviceComm). It skips without a
// GPU or without libnccl.so.2.
func TestNCCLScatterGather(t *testing.T) {
	bes := ncclDevices(t)
	world := len(bes)
	const size = 1 << 12
	data := randomRanks(world, size, 7, 8)
	// Equal ranges and (with 2 GPUs) unequal ones, not covering all of x.
	cases := [][]int{{0, size}, {64, size - 64}}
	if world == 2 {
		cases = [][]int{{0, size / 2, size}, {64, 64 + 1000, 64 + 2000}, {0, 100, size - 8}}
	}
	err := InProcess(world, func(e Env) error {
		be := bes[e.Rank]
		c, err := Join(e, be)
		if err != nil {
			return err
		}
		defer c.Close()
		x, err := be.Alloc("x", gpu.Grads, gpu.Full, size)
		if err != nil {
			return err
		}
		defer be.Free(x)
		y, err := be.Alloc("y", gpu.Grads, gpu.Full, size)
		if err != nil {
			return err
		}
		defer be.Free(y)
		for _, b := range cases {
			if err := checkScatterGather(be, c, x, data, b, 1e-6); err != nil {
				return err
			}
			// The same on the communicator's own stream (Issue).
			if err := checkIssued(be, c, x, y, data, b, 1e-6); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ncclDevices opens one backend per visible GPU (up to 2), closed when t
// ends; it skips t without a GPU.
func ncclDevices(t *testing.T) []*cuda.Backend {
	t.Helper()
	n, err := cuda.DeviceCount()
	if err != nil || n == 0 {
		t.Skipf("no CUDA device: %v", err)
	}
	bes := make([]*cuda.Backend, min(n, 2))
	for r := range bes {
		if bes[r], err = cuda.New(r); err != nil {
			t.Skipf("cuda:%d: %v", r, err)
		}
		t.Cleanup(func() { bes[r].Close() })
	}
	return bes
}
