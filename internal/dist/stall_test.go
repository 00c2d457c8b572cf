package dist

import (
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// freeze makes c's rank fall silent as a stopped process does: no more
// heartbeats, no judging of others; its connections stay open.
func freeze(c Comm) { c.(*tcpComm).g.stopLiveness() }

// A rank that falls silent ends the job within the stall limit: the rank
// waiting for it in a collective fails naming it, and rank 0 tells the
// others. The ranks that keep beating, while one of them computes longer
// than the limit, are not stalled.
func TestStalledRankEndsTheJob(t *testing.T) {
	const stall = 300 * time.Millisecond
	cs, errs := joinEach(t, 3, func(int) Options { return Options{Stall: stall, StallName: "the stall limit"} })
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// Alive but slow: rank 2 computes for 3 limits before the barrier.
	each(t, cs, func(r int, c Comm) error {
		if r == 2 {
			time.Sleep(3 * stall)
		}
		return c.SumHost([]float64{1})
	})
	freeze(cs[1])
	start := time.Now()
	var wg sync.WaitGroup
	for _, r := range []int{0, 2} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[r] = cs[r].SumHost([]float64{1}) }()
	}
	wg.Wait()
	if took := time.Since(start); took > 10*stall {
		t.Errorf("the job took %s to end (stall limit %s)", took, stall)
	}
	for _, r := range []int{0, 2} {
		if !IsPeerFailure(errs[r]) || !strings.Contains(errs[r].Error(), "rank 1 made no progress for 300ms") || !strings.Contains(errs[r].Error(), "the stall limit sets the limit") {
			t.Errorf("rank %d: %v, want rank 1's stall", r, errs[r])
		}
	}
	var se *StallError
	if !errors.As(errs[0], &se) || se.Rank != 1 {
		t.Errorf("rank 0 (the detector): %#v, want a StallError for rank 1", errs[0])
	}
	for _, c := range cs {
		c.Abort(errors.New("cleanup"))
	}
}

// A process stopped by SIGSTOP ends the job (the launcher's ranks exit)
// instead of holding the others forever.
func TestLauncherEndsAJobWithAStoppedRank(t *testing.T) {
	start := time.Now()
	out, err := launch(t, "stop", 3)
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("got %v, want a rank's failure\n%s", err, out)
	}
	if !strings.Contains(out, "rank 1 made no progress") {
		t.Errorf("no rank named the stopped rank 1 (%v):\n%s", err, out)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the job took %s to end (stall limit 1s)", took)
	}
}

// The first interrupt ends every rank: those that ignore it (or are
// stopped and cannot see it) are killed StopGrace later.
func TestLauncherFirstInterruptEndsEveryRank(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	go func() {
		time.Sleep(2 * time.Second) // the ranks have joined and rank 1 stopped itself
		sigs <- syscall.SIGINT
	}()
	start := time.Now()
	out, err := launchWith(t, "hang", 3, sigs, time.Second)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 128+int(syscall.SIGKILL) {
		t.Fatalf("got %v, want the ranks killed\n%s", err, out)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("the ranks took %s to end after one interrupt", took)
	}
	if !strings.Contains(out, "asking every rank to stop") {
		t.Errorf("the launcher did not say what the interrupt does:\n%s", out)
	}
}
