package train

import (
	"os"
	"strconv"
	"syscall"
)

// FaultEnv names a test hook: COMPACT_FAULT_KILL_CHECKPOINT=N makes the
// process SIGKILL itself in the middle of writing the checkpoint of step N
// (files written, directory not yet renamed), the worst moment for a crash.
// The crash-safety tests use it; it costs one environment lookup per
// checkpoint otherwise.
const FaultEnv = "COMPACT_FAULT_KILL_CHECKPOINT"

func maybeCrash(step int) {
	if v := os.Getenv(FaultEnv); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n == step {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
}
