package train

import (
	"fmt"
	"os"
	"syscall"
)

// RankFaultEnv names a test hook: COMPACT_FAULT_KILL_RANK=R:N makes rank R
// of a data-parallel job SIGKILL itself as step N begins, the way an OOM
// killer or a crashed node ends a rank; the multi-GPU tests use it.
const RankFaultEnv = "COMPACT_FAULT_KILL_RANK"

func (d *dataParallel) maybeKillSelf(step int) {
	v := os.Getenv(RankFaultEnv)
	if v == "" {
		return
	}
	var r, n int
	if _, err := fmt.Sscanf(v, "%d:%d", &r, &n); err == nil && r == d.rank() && n == step {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}
