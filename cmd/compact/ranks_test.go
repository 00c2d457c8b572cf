package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/compact-llm/compact/internal/dist"
)

// rankProc is one rank of a job started by hand (torchrun variables).
type rankProc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
}

// lockedBuffer is a Buffer a process writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startRank starts rank r of world at port with env on top of this
// process's environment; it is killed when t ends.
func startRank(t *testing.T, r, world, port int, env []string, args ...string) *rankProc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append(os.Environ(), dist.Env{Rank: r, World: world, LocalRank: r, Addr: "127.0.0.1", Port: port}.Vars()...), env...)
	p := &rankProc{cmd: cmd, stderr: &lockedBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return p
}

// wait returns the rank's exit code, or fails t after limit.
func (p *rankProc) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(limit):
		p.cmd.Process.Kill()
		t.Fatalf("rank still running after %s:\n%s", limit, p.stderr)
		return -1
	}
}

// Ranks started by hand with different configurations (a key set on one
// rank only, by --set or by a COMPACT_* variable, or other data) are
// refused at the rendezvous: both exit 2 naming the key and both values,
// and nothing is written.
func TestRanksWithDifferentConfigsAreRefused(t *testing.T) {
	train, val := shards(t)
	for _, c := range []struct {
		name string
		env  []string // rank 1's only
		sets []string // rank 1's only
		want string
	}{
		{"seed", nil, []string{"train.seed=7"}, "train.seed = 7 (rank 0: 42)"},
		{"lr", nil, []string{"train.lr=0.01"}, "train.lr = 0.01 (rank 0: "},
		{"micro_batch", nil, []string{"train.micro_batch=2"}, "train.micro_batch = 2 (rank 0: 4)"},
		{"data", nil, []string{"data.train=" + val}, "data.train = val_"},
		{"env", []string{"COMPACT_TRAIN_LR=0.02"}, nil, "train.lr = 0.02 (rank 0: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			port, err := dist.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			base := append([]string{"pretrain", "--steps", "2", "--out", out}, smallRun(train, val)...)
			r0 := startRank(t, 0, 2, port, nil, base...)
			args := append([]string{}, base...)
			for _, s := range c.sets {
				args = append(args, "--set", s)
			}
			r1 := startRank(t, 1, 2, port, c.env, args...)
			for r, p := range []*rankProc{r0, r1} {
				code := p.wait(t, 60*time.Second)
				msg := p.stderr.String()
				if code != 2 || !strings.Contains(msg, "configurations differ") || !strings.Contains(msg, "rank 1 has "+c.want) {
					t.Errorf("rank %d: exit %d, want 2 naming %q:\n%s", r, code, c.want, msg)
				}
			}
			if _, err := os.Stat(filepath.Join(out, "metrics.jsonl")); err == nil {
				t.Errorf("a refused job wrote metrics")
			}
		})
	}
}

// A rank that waits at the rendezvous says so: rank 0 for the missing
// ranks, another rank for rank 0.
func TestRankWaitingAtRendezvousSaysSo(t *testing.T) {
	train, val := shards(t)
	args := append([]string{"pretrain", "--steps", "2", "--out", filepath.Join(t.TempDir(), "run")}, smallRun(train, val)...)
	p0, err := dist.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	p1, err := dist.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	lone0 := startRank(t, 0, 2, p0, nil, args...)
	lone1 := startRank(t, 1, 2, p1, nil, args...)
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range []struct {
		p    *rankProc
		want string
	}{{lone0, "rank 0: waiting at 127.0.0.1:"}, {lone1, "rank 1: waiting for rank 0 at 127.0.0.1:"}} {
		for !strings.Contains(c.p.stderr.String(), c.want) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q within 30 s:\n%s", c.want, c.p.stderr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if got := lone0.stderr.String(); !strings.Contains(got, "for rank 1 (1 of 2 ranks joined") {
		t.Errorf("rank 0 does not name the rank it waits for:\n%s", got)
	}
}

// launcher starts `compact ARGS` (with --gpus) and reads its output as it
// comes; lines() has what arrived so far.
type launcher struct {
	cmd *exec.Cmd
	out *lockedBuffer
}

func startLauncher(t *testing.T, env []string, args ...string) *launcher {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	l := &launcher{cmd: cmd, out: &lockedBuffer{}}
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			fmt.Fprintln(l.out, sc.Text())
		}
		io.Copy(io.Discard, pipe)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return l
}

// waitFor waits (up to limit) until the output holds s.
func (l *launcher) waitFor(t *testing.T, s string, limit time.Duration) {
	t.Helper()
	for end := time.Now().Add(limit); !strings.Contains(l.out.String(), s); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no %q within %s:\n%s", s, limit, l.out)
		}
	}
}

// exit waits (up to limit) for the launcher and returns its status.
func (l *launcher) exit(t *testing.T, limit time.Duration) int {
	t.Helper()
	p := &rankProc{cmd: l.cmd, stderr: l.out}
	return p.wait(t, limit)
}

// A rank stopped with SIGSTOP ends the job within train.comm_timeout: the
// launcher exits with a failure naming the rank, and every rank is gone.
func TestGPUsStoppedRankEndsTheJob(t *testing.T) {
	train, val := shards(t)
	args := append([]string{"pretrain", "--steps", "8", "--gpus", "2", "--out", filepath.Join(t.TempDir(), "run"),
		"--set", "train.grad_accum=1", "--set", "train.comm_timeout=2"}, smallRun(train, val)...)
	start := time.Now()
	l := startLauncher(t, []string{"COMPACT_FAULT_STOP_RANK=1:3"}, args...)
	l.waitFor(t, "rank 1 stops itself", 60*time.Second)
	code := l.exit(t, 60*time.Second)
	out := l.out.String()
	if code == 0 || code == 2 || !strings.Contains(out, "rank 1 made no progress for 2s") || !strings.Contains(out, "train.comm_timeout") {
		t.Errorf("launcher exit %d, want a failure with rank 0 naming the stopped rank 1:\n%s", code, out)
	}
	if strings.Contains(out, "rank 0 failed") {
		t.Errorf("the launcher blames rank 0, which only saw rank 1 stall:\n%s", out)
	}
	t.Logf("the job ended %s after it started", time.Since(start).Round(time.Second))
}

// One Ctrl-C to the launcher ends the job even while a rank is stopped
// (with no stall limit to end it): the stopped rank is continued to see
// the interrupt, every rank stops at the step boundary, the last complete
// step is saved.
func TestGPUsOneInterruptEndsAJobWithAStoppedRank(t *testing.T) {
	train, val := shards(t)
	out := filepath.Join(t.TempDir(), "run")
	args := append([]string{"pretrain", "--steps", "8", "--gpus", "2", "--out", out,
		"--set", "train.grad_accum=1", "--set", "train.comm_timeout=0"}, smallRun(train, val)...)
	l := startLauncher(t, []string{"COMPACT_FAULT_STOP_RANK=1:3"}, args...)
	l.waitFor(t, "rank 1 stops itself", 60*time.Second)
	time.Sleep(500 * time.Millisecond) // rank 0 now waits for rank 1
	l.cmd.Process.Signal(syscall.SIGINT)
	start := time.Now()
	code := l.exit(t, 60*time.Second)
	if code != exitInterrupted {
		t.Errorf("launcher exit %d after one interrupt, want %d:\n%s", code, exitInterrupted, l.out)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the job took %s to end after one interrupt", took)
	}
	if _, err := os.Stat(filepath.Join(out, "checkpoints", "step-0000002")); err != nil {
		t.Errorf("the last complete step's checkpoint is missing: %v\n%s", err, l.out)
	}
}
