package train

import (
	"fmt"
	"os"
	"syscall"
)

// Test hooks of the multi-GPU tests, as step N begins on rank R:
// COMPACT_FAULT_KILL_RANK=R:N makes the rank SIGKILL itself, the way an OOM
// killer or a crashed node ends a rank; COMPACT_FAULT_STOP_RANK=R:N makes it
// SIGSTOP itself, the way a frozen host or a debugger holds one (the others
// must not wait for it forever, see train.comm_timeout).
const (
	RankFaultEnv = "COMPACT_FAULT_KILL_RANK"
	RankStopEnv  = "COMPACT_FAULT_STOP_RANK"
)

func (d *dataParallel) maybeKillSelf(step int) {
	if rankFault(RankFaultEnv, d.rank(), step) {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	if rankFault(RankStopEnv, d.rank(), step) {
		fmt.Fprintf(os.Stderr, "compact: %s: rank %d stops itself (SIGSTOP) at step %d\n", RankStopEnv, d.rank(), step)
		syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	}
}

// rankFault reports whether the hook env names this rank and step.
func rankFault(env string, rank, step int) bool {
	var r, n int
	_, err := fmt.Sscanf(os.Getenv(env), "%d:%d", &r, &n)
	return err == nil && r == rank && n == step
}
