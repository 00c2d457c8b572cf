package dist

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
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
		c, err := Join(e, be, Options{})
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
		c, err := Join(e, be, Options{})
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
// ends; it skips t without a GPU or without a loadable NCCL.
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
	col, ok := gpu.Backend(bes[0]).(gpu.Collectives)
	if !ok {
		t.Skip("the CUDA backend has no collectives here")
	}
	if _, err := col.NewCommID(); err != nil {
		t.Skipf("no NCCL: %v", err)
	}
	return bes
}

// On a GPU, the rendezvous refuses ranks that disagree before NCCL opens:
// rank 0 on CUDA (world 2) against a rank 1 on the CPU whose learning rate
// differs; both are named, the backend too (NCCL and TCP ranks would wait
// for each other forever). One GPU is enough.
func TestNCCLRefusesDifferentConfigurations(t *testing.T) {
	bes := ncclDevices(t)
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var be gpu.Backend = cpu.New(1)
			lr := "0.01"
			if r == 0 {
				be, lr = bes[0], "0.001"
			}
			_, errs[r] = Join(Env{Rank: r, World: 2, LocalRank: r, Addr: "127.0.0.1", Port: port}, be,
				Options{Identity: map[string]string{"train.lr": lr}})
		}()
	}
	wg.Wait()
	for r, err := range errs {
		var me *MismatchError
		if !errors.As(err, &me) || !strings.Contains(err.Error(), "backend = cpu (rank 0: cuda)") || !strings.Contains(err.Error(), "train.lr = 0.01 (rank 0: 0.001)") {
			t.Errorf("rank %d: %v, want the backend and train.lr named", r, err)
		}
	}
}

// On a GPU (a world of one), the group's failure (here the verdict the
// stall watch gives) aborts the NCCL communicator: the next collective
// fails naming the stalled rank, and leaving does not hang.
func TestNCCLStallAbortsCommunicator(t *testing.T) {
	bes := ncclDevices(t)
	be := bes[0]
	c, err := Join(Env{World: 1}, be, Options{Stall: time.Second})
	if err != nil {
		t.Skipf("no NCCL communicator: %v", err)
	}
	x, err := be.Alloc("x", gpu.Grads, gpu.Full, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Free(x)
	if err := c.AllReduce(x); err != nil {
		t.Fatal(err)
	}
	c.(*deviceComm).g.fail(&StallError{Rank: 1, After: time.Second, Setting: "train.comm_timeout"})
	err = c.AllReduce(x)
	if !IsPeerFailure(err) || !strings.Contains(err.Error(), "rank 1 made no progress") {
		t.Errorf("after the stall: %v, want rank 1's stall", err)
	}
	p := c.Issue(func(c Comm) error { return c.AllReduce(x) })
	if err := p.Wait(); !IsPeerFailure(err) {
		t.Errorf("issued after the stall: %v", err)
	}
	done := make(chan struct{})
	go func() { c.Abort(err); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Abort hung after the communicator was aborted")
	}
	if err := be.Sync(); err != nil {
		t.Logf("device after the abort: %v", err)
	}
}
