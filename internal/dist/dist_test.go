package dist

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
)

// childMode, when set in the environment, makes the test binary act as a
// rank started by the launcher tests instead of running the tests.
const childMode = "COMPACT_DIST_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childMode); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

// runChild joins the job from the environment, then: "ok" sums the ranks
// and prints the sum; "fail" makes rank 1 exit 3; "kill" makes rank 1 kill
// itself with SIGKILL; "stop" makes rank 1 stop itself (SIGSTOP) in a job
// with a one-second stall limit; the other ranks then wait in a barrier and
// report. "hang": rank 1 stops itself, the others sleep (no stall limit).
func runChild(mode string) int {
	// Like the real binary, a rank reports a peer's failure rather than
	// dying of the launcher's SIGTERM first.
	signal.Ignore(syscall.SIGTERM)
	e, found, err := FromEnv(os.Getenv)
	if err != nil || !found {
		fmt.Println("bad env:", err)
		return 9
	}
	var o Options
	if mode == "stop" {
		o.Stall = time.Second
	}
	c, err := Join(e, cpu.New(1), o)
	if err != nil {
		fmt.Println("join:", err)
		return 8
	}
	if e.Rank == 1 {
		switch mode {
		case "fail":
			return 3
		case "kill":
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		case "stop", "hang":
			syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		}
	}
	if mode == "hang" {
		time.Sleep(time.Hour)
	}
	v := []float64{float64(e.Rank)}
	err = c.SumHost(v)
	if err == nil && mode != "ok" { // the failing rank may have sent its part first
		select {
		case <-c.Failed():
			err = c.Err()
		case <-time.After(time.Minute): // it must have stopped this one
			return 5
		}
	}
	if err != nil {
		fmt.Println("sum:", err)
		if IsPeerFailure(err) {
			return ExitPeerFailed
		}
		return 4
	}
	fmt.Println("sum", v[0])
	if err := c.Close(); err != nil {
		fmt.Println("close:", err)
		return 6
	}
	return 0
}

func launch(t *testing.T, mode string, n int) (string, error) {
	t.Helper()
	return launchWith(t, mode, n, nil, 0)
}

// launchWith is launch relaying sigs to the launcher, which kills what
// still runs stopGrace after the first.
func launchWith(t *testing.T, mode string, n int, sigs <-chan os.Signal, stopGrace time.Duration) (string, error) {
	t.Helper()
	out := &syncWriter{w: &bytes.Buffer{}}
	l := &Launcher{Procs: n, Program: os.Args[0], Args: []string{"-test.run=^$"},
		Env: append(os.Environ(), childMode+"="+mode), Out: out, Grace: 5 * time.Second, StopGrace: stopGrace}
	err := l.Run(sigs)
	return out.String(), err
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func TestLauncherRuns(t *testing.T) {
	out, err := launch(t, "ok", 3)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for r := range 3 {
		if !strings.Contains(out, fmt.Sprintf("[rank %d] sum 3", r)) {
			t.Errorf("rank %d did not report the sum 0+1+2:\n%s", r, out)
		}
	}
}

func TestLauncherStopsOthersWhenOneFails(t *testing.T) {
	for _, mode := range []string{"fail", "kill"} {
		t.Run(mode, func(t *testing.T) {
			start := time.Now()
			out, err := launch(t, mode, 3)
			var ee *ExitError
			if !errors.As(err, &ee) || ee.Rank != 1 {
				t.Fatalf("got %v, want rank 1's failure\n%s", err, out)
			}
			want := 3
			if mode == "kill" {
				want = 128 + int(syscall.SIGKILL)
			}
			if ee.Code != want {
				t.Errorf("exit code %d, want %d", ee.Code, want)
			}
			if time.Since(start) > 30*time.Second {
				t.Errorf("the other ranks took %s to stop", time.Since(start))
			}
			if !strings.Contains(out, "rank 1") || !strings.Contains(out, "sum:") {
				t.Errorf("the surviving ranks did not name rank 1's failure:\n%s", out)
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	if _, found, err := FromEnv(env()); found || err != nil {
		t.Errorf("no variables: found %v err %v", found, err)
	}
	e, found, err := FromEnv(env("RANK", "1", "WORLD_SIZE", "2", "MASTER_ADDR", "10.0.0.1", "MASTER_PORT", "29500"))
	if err != nil || !found || e != (Env{Rank: 1, World: 2, LocalRank: 1, Addr: "10.0.0.1", Port: 29500}) {
		t.Errorf("got %+v %v %v", e, found, err)
	}
	bad := map[string][]string{
		"WORLD_SIZE":             {"RANK", "0", "WORLD_SIZE", "0", "MASTER_PORT", "1"},
		"outside":                {"RANK", "2", "WORLD_SIZE", "2", "MASTER_PORT", "1"},
		"MASTER_PORT is not set": {"RANK", "0", "WORLD_SIZE", "2"},
		"not an integer":         {"RANK", "x", "WORLD_SIZE", "2", "MASTER_PORT", "1"},
		"RANK is not set":        {"WORLD_SIZE", "2", "MASTER_PORT", "1"},
		"not a TCP port":         {"RANK", "0", "WORLD_SIZE", "2", "MASTER_PORT", "70000"},
		"LOCAL_RANK=3":           {"RANK", "1", "WORLD_SIZE", "2", "LOCAL_RANK", "3", "MASTER_PORT", "1"},
	}
	for want, kv := range bad {
		if _, _, err := FromEnv(env(kv...)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: got %v, want an error saying %q", kv, err, want)
		}
	}
}

// joinAll joins n ranks in goroutines over TCP on the CPU backend.
func joinAll(t *testing.T, n int) []Comm {
	t.Helper()
	cs := make([]Comm, n)
	if err := InProcess(n, func(e Env) (err error) {
		cs[e.Rank], err = Join(e, cpu.New(1), Options{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return cs
}

// each runs f on every rank concurrently and fails on any error.
func each(t *testing.T, cs []Comm, f func(r int, c Comm) error) {
	t.Helper()
	if err := eachRank(len(cs), func(r int) error { return f(r, cs[r]) }); err != nil {
		t.Fatal(err)
	}
}

// checkBroadcast uploads this rank's data[rank] into x, broadcasts x from
// root and checks that x then holds data[root] bit for bit.
func checkBroadcast(be gpu.Backend, c Comm, x *gpu.Tensor, data [][]float32, root int) error {
	if err := be.Upload(x, data[c.Rank()]); err != nil {
		return err
	}
	if err := c.Broadcast(x, root); err != nil {
		return err
	}
	b, err := be.Download(x)
	if err != nil {
		return err
	}
	for i := range b {
		if b[i] != data[root][i] {
			return fmt.Errorf("broadcast from rank %d, element %d: %g, want %g", root, i, b[i], data[root][i])
		}
	}
	return nil
}

func TestTCPCollectives(t *testing.T) { tcpCollectives(t) }

// A payload larger than one frame travels in parts and arrives whole: the
// same collectives with frames cut at 1000 bytes (each payload is 4000).
func TestTCPCollectivesInParts(t *testing.T) {
	defer func(n int) { dataPart = n }(dataPart)
	dataPart = 1000
	tcpCollectives(t)
}

func tcpCollectives(t *testing.T) {
	const n, size = 3, 1000
	cs := joinAll(t, n)
	be := cpu.New(1)
	data := randomRanks(n, size, 1, 2)
	// The sum in rank order, as rank 0 forms it.
	want := make([]float32, size)
	for i := range want {
		s := data[0][i]
		for r := 1; r < n; r++ {
			s += data[r][i]
		}
		want[i] = s
	}
	got := make([][]float32, n)
	each(t, cs, func(r int, c Comm) error {
		x, err := be.Alloc("x", gpu.Grads, gpu.Full, size)
		if err != nil {
			return err
		}
		be.Upload(x, data[r])
		if err := c.AllReduce(x); err != nil {
			return err
		}
		got[r], err = be.Download(x)
		if err != nil {
			return err
		}
		// Broadcast from the last rank: everyone ends with its data.
		if err := checkBroadcast(be, c, x, data, n-1); err != nil {
			return err
		}
		v := []float64{float64(r), 1}
		if err := c.SumHost(v); err != nil {
			return err
		}
		if v[0] != n*(n-1)/2 || v[1] != n {
			return fmt.Errorf("SumHost gave %v", v)
		}
		return c.Close()
	})
	for r := range got {
		for i := range want {
			if got[r][i] != want[i] {
				t.Fatalf("rank %d element %d: %g, want %g (bit-identical sum in rank order)", r, i, got[r][i], want[i])
			}
		}
	}
}

func TestAbortReachesEveryRank(t *testing.T) {
	cs := joinAll(t, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs[r] = cs[r].SumHost([]float64{1}) }()
	}
	cs[2].Abort(errors.New("loss is NaN"))
	wg.Wait()
	for r := 0; r < 2; r++ {
		if errs[r] == nil || !strings.Contains(errs[r].Error(), "rank 2 failed: loss is NaN") {
			t.Errorf("rank %d: got %v, want rank 2's failure", r, errs[r])
		}
		select {
		case <-cs[r].Failed():
		default:
			t.Errorf("rank %d: Failed not closed", r)
		}
		cs[r].Abort(errors.New("cleanup"))
	}
}

func TestSingleRankNeedsNoNetwork(t *testing.T) {
	c, err := Join(Env{World: 1}, cpu.New(1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	v := []float64{2}
	if err := c.SumHost(v); err != nil || v[0] != 2 {
		t.Errorf("SumHost: %v %v", v, err)
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}

// checkScatterGather checks ReduceScatter, AllGather and Reduce on x with
// every rank's data[rank]: rank r's range of the reduce-scatter and root's
// reduce equal the sum within tol, and after the all-gather range q of x
// holds rank q's data bit for bit on every rank.
func checkScatterGather(be gpu.Backend, c Comm, x *gpu.Tensor, data [][]float32, bounds []int, tol float64) error {
	r := c.Rank()
	sum := func(i int) float64 {
		var s float64
		for q := range data {
			s += float64(data[q][i])
		}
		return s
	}
	near := func(what string, got []float32, lo int) error {
		for i, v := range got {
			if d := math.Abs(float64(v) - sum(lo+i)); d > tol {
				return fmt.Errorf("%s: element %d is %g, want %g", what, lo+i, v, sum(lo+i))
			}
		}
		return nil
	}
	if err := be.Upload(x, data[r]); err != nil {
		return err
	}
	if err := c.ReduceScatter(x, bounds); err != nil {
		return err
	}
	got, err := be.Download(x)
	if err != nil {
		return err
	}
	if err := near(fmt.Sprintf("reduce-scatter %v, rank %d", bounds, r), got[bounds[r]:bounds[r+1]], bounds[r]); err != nil {
		return err
	}
	be.Upload(x, data[r])
	if err := c.AllGather(x, bounds); err != nil {
		return err
	}
	if got, err = be.Download(x); err != nil {
		return err
	}
	for q := range c.Size() {
		for i := bounds[q]; i < bounds[q+1]; i++ {
			if got[i] != data[q][i] {
				return fmt.Errorf("all-gather %v on rank %d: element %d is %g, rank %d has %g", bounds, r, i, got[i], q, data[q][i])
			}
		}
	}
	root := c.Size() - 1
	be.Upload(x, data[r])
	if err := c.Reduce(x, root); err != nil {
		return err
	}
	if got, err = be.Download(x); err != nil {
		return err
	}
	if r == root {
		return near(fmt.Sprintf("reduce to rank %d", root), got, 0)
	}
	return nil
}

// Reduce-scatter, all-gather and reduce over TCP on ranges of unequal and
// equal length, not covering the whole tensor, and bad ranges refused.
func TestTCPScatterGather(t *testing.T) {
	const n, size = 3, 1000
	cs := joinAll(t, n)
	be := cpu.New(1)
	data := randomRanks(n, size, 5, 6)
	each(t, cs, func(r int, c Comm) error {
		x, err := be.Alloc("x", gpu.Grads, gpu.Full, size)
		if err != nil {
			return err
		}
		for _, b := range [][]int{{0, 100, 350, 1000}, {10, 310, 610, 910}, {0, 0, 500, 1000}} {
			if err := checkScatterGather(be, c, x, data, b, 1e-6); err != nil {
				return err
			}
		}
		for _, b := range [][]int{{0, 500, 1000}, {0, 600, 500, 1000}, {0, 10, 20, 1001}} {
			if err := c.ReduceScatter(x, b); err == nil {
				return fmt.Errorf("reduce-scatter over %v accepted", b)
			}
		}
		return c.Close()
	})
}

// checkIssued issues an all-reduce of x and a reduce-scatter of y (over
// bounds), waits for both, and checks them against the host sums of data
// within tol: the issued path gives what the direct calls give.
func checkIssued(be gpu.Backend, c Comm, x, y *gpu.Tensor, data [][]float32, bounds []int, tol float64) error {
	r := c.Rank()
	be.Upload(x, data[r])
	be.Upload(y, data[r])
	px := c.Issue(func(c Comm) error { return c.AllReduce(x) })
	py := c.Issue(func(c Comm) error { return c.ReduceScatter(y, bounds) })
	if err := py.Wait(); err != nil { // out of order: each waits for its own
		return err
	}
	if err := px.Wait(); err != nil {
		return err
	}
	gx, err := be.Download(x)
	if err != nil {
		return err
	}
	gy, err := be.Download(y)
	if err != nil {
		return err
	}
	for i := range gx {
		var s float64
		for q := range data {
			s += float64(data[q][i])
		}
		if math.Abs(float64(gx[i])-s) > tol {
			return fmt.Errorf("issued all-reduce, element %d: %g, want %g", i, gx[i], s)
		}
		if i >= bounds[r] && i < bounds[r+1] && math.Abs(float64(gy[i])-s) > tol {
			return fmt.Errorf("issued reduce-scatter, element %d: %g, want %g", i, gy[i], s)
		}
	}
	return nil
}

func TestTCPIssue(t *testing.T) {
	const n, size = 2, 500
	cs := joinAll(t, n)
	be := cpu.New(1)
	data := randomRanks(n, size, 9, 10)
	each(t, cs, func(r int, c Comm) error {
		x, _ := be.Alloc("x", gpu.Grads, gpu.Full, size)
		y, _ := be.Alloc("y", gpu.Grads, gpu.Full, size)
		for range 3 {
			if err := checkIssued(be, c, x, y, data, []int{0, 200, size}, 1e-6); err != nil {
				return err
			}
		}
		return c.Close()
	})
}

// randomRanks is n ranks' data of size values in [-1, 1), from seed.
func randomRanks(n, size int, seed1, seed2 uint64) [][]float32 {
	rng := rand.New(rand.NewPCG(seed1, seed2))
	data := make([][]float32, n)
	for r := range data {
		data[r] = make([]float32, size)
		for i := range data[r] {
			data[r][i] = rng.Float32()*2 - 1
		}
	}
	return data
}
