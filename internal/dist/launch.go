package dist

// The local launcher behind `--gpus N`: it runs the same binary N times as
// ranks 0..N-1 of one job on this host and supervises them. The children
// get their own process group, so a terminal's Ctrl-C reaches only the
// launcher, which passes it on: one signal asks every rank to stop at the
// next step boundary (they agree on it and save a checkpoint) and kills
// what still runs StopGrace later; a second kills them at once. Every
// SIGTERM comes with a SIGCONT, so a stopped rank (kill -STOP) wakes to
// handle it instead of holding the others.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Launcher starts and supervises the ranks of a local job.
type Launcher struct {
	Procs   int
	Program string   // the binary each rank runs
	Args    []string // its arguments (the same for every rank)
	Env     []string // the base environment; the rank variables are set on top
	Out     io.Writer
	// Grace is how long ranks get to exit after SIGTERM before SIGKILL
	// when one failed (default 30 s); StopGrace the same after a first
	// interrupt, which lets them finish a step and a checkpoint (default 2
	// minutes).
	Grace, StopGrace time.Duration
}

// ExitError is a rank that failed: Code is the status the launcher should
// exit with (the rank's own, or 128+signal).
type ExitError struct {
	Rank, Code int
	Err        error
}

func (e *ExitError) Error() string {
	if e.Code == ExitPeerFailed {
		return fmt.Sprintf("rank %d ended the job for another rank's failure (%v; its message above names the rank); the other ranks were stopped", e.Rank, e.Err)
	}
	return fmt.Sprintf("rank %d failed (%v); the other ranks were stopped", e.Rank, e.Err)
}

// FreePort asks the kernel for a TCP port on 127.0.0.1 that is free now.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("no free local port for the rendezvous: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

type child struct {
	rank int
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Run starts the ranks, forwards sigs (first: SIGTERM, then SIGKILL), and
// waits for all of them. When one fails the others get SIGTERM, then SIGKILL
// after Grace, and Run returns an *ExitError for the first failure.
func (l *Launcher) Run(sigs <-chan os.Signal) error {
	if l.Procs < 1 {
		return fmt.Errorf("launcher: %d processes", l.Procs)
	}
	// Linux sends the parent-death signal when the thread that started a
	// child exits: keep this goroutine on one thread until Run returns.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	port, err := FreePort()
	if err != nil {
		return err
	}
	grace, stopGrace := l.Grace, l.StopGrace
	if grace <= 0 {
		grace = 30 * time.Second
	}
	if stopGrace <= 0 {
		stopGrace = 2 * time.Minute
	}
	var outMu sync.Mutex
	children := make([]*child, 0, l.Procs)
	exited := make(chan *child, l.Procs)
	stopAll := func(sig syscall.Signal) {
		for _, c := range children {
			select {
			case <-c.done:
			default:
				c.cmd.Process.Signal(sig)
				if sig != syscall.SIGKILL {
					wake(c.cmd.Process) // a stopped rank handles nothing until continued
				}
			}
		}
	}
	for r := range l.Procs {
		e := Env{Rank: r, World: l.Procs, LocalRank: r, Addr: "127.0.0.1", Port: port}
		cmd := exec.Command(l.Program, l.Args...)
		cmd.Env = append(withoutRankVars(l.Env), e.Vars()...)
		cmd.SysProcAttr = childAttr()
		out, err := cmd.StdoutPipe()
		if err != nil {
			stopAll(syscall.SIGKILL)
			return err
		}
		cmd.Stderr = cmd.Stdout // one pipe: lines stay in order
		if err := cmd.Start(); err != nil {
			stopAll(syscall.SIGKILL)
			return fmt.Errorf("launcher: starting rank %d (%s): %w", r, l.Program, err)
		}
		c := &child{rank: r, cmd: cmd, done: make(chan struct{})}
		children = append(children, c)
		go func() {
			// Wait closes the pipe: read it to the end first.
			prefixLines(out, l.Out, &outMu, fmt.Sprintf("[rank %d] ", r))
			c.err = cmd.Wait()
			close(c.done)
			exited <- c
		}()
	}
	// first is the failure to report: the first rank that failed on its
	// own, else the first that stopped because of another (ExitPeerFailed).
	var first *ExitError
	var killAt <-chan time.Time
	signalled := 0
	for left := l.Procs; left > 0; {
		select {
		case c := <-exited:
			left--
			if c.err == nil {
				continue
			}
			e := &ExitError{Rank: c.rank, Code: exitCode(c.err), Err: c.err}
			if first == nil || (first.Code == ExitPeerFailed && e.Code != ExitPeerFailed) {
				first = e
			}
			if killAt == nil && signalled == 0 {
				stopAll(syscall.SIGTERM)
				killAt = time.After(grace)
			}
		case s := <-sigs:
			signalled++
			if signalled == 1 {
				fmt.Fprintf(l.Out, "launcher: %v: asking every rank to stop at the next step boundary; those still running in %s are killed (interrupt again to kill them now)\n", s, stopGrace)
				stopAll(syscall.SIGTERM)
				if killAt == nil {
					killAt = time.After(stopGrace)
				}
			} else {
				fmt.Fprintf(l.Out, "launcher: %v again: killing every rank\n", s)
				stopAll(syscall.SIGKILL)
			}
		case <-killAt:
			stopAll(syscall.SIGKILL)
		}
	}
	if first != nil {
		return first
	}
	return nil
}

// exitCode is a finished child's status: its exit code, or 128+signal.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		if c := ee.ExitCode(); c > 0 {
			return c
		}
	}
	return 1
}

// withoutRankVars drops inherited rank variables: each child gets its own.
func withoutRankVars(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case EnvRank, EnvWorld, EnvLocalRank, EnvAddr, EnvPort:
			continue
		}
		out = append(out, kv)
	}
	return out
}

// prefixLines copies r to w line by line, each line prefixed, whole lines
// at a time so ranks do not interleave within a line.
func prefixLines(r io.Reader, w io.Writer, mu *sync.Mutex, prefix string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// A progress bar's carriage returns would garble the prefixes: keep the last redraw.
		line := sc.Text()
		if i := strings.LastIndexByte(line, '\r'); i >= 0 {
			line = line[i+1:]
		}
		mu.Lock()
		fmt.Fprintf(w, "%s%s\n", prefix, line)
		mu.Unlock()
	}
	io.Copy(io.Discard, r)
}
