package train

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// InterruptEnv names a test hook: COMPACT_TEST_SIGINT_STEP=N makes the
// process send itself SIGINT in the middle of step N (after the forward
// pass, before the backward), the moment a user's Ctrl-C most likely
// lands; "N,2" sends two. The interrupt tests use it to make the signal's
// timing deterministic.
const InterruptEnv = "COMPACT_TEST_SIGINT_STEP"

func (t *Trainer) maybeInterruptSelf(step int) {
	v := os.Getenv(InterruptEnv)
	if v == "" {
		return
	}
	at, times, _ := strings.Cut(v, ",")
	if n, err := strconv.Atoi(at); err != nil || n != step {
		return
	}
	count := 1
	if c, err := strconv.Atoi(times); err == nil {
		count = c
	}
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	// Wait for the handler to see it, as a real signal would arrive while
	// the step runs on.
	for i := 0; i < 500 && (t.model.Stop == nil || !t.model.Stop()); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	for ; count > 1; count-- {
		syscall.Kill(os.Getpid(), syscall.SIGINT)
		time.Sleep(time.Second) // the handler exits the process
	}
}
