// Command compact pretrains and fine-tunes LLaMA-family models with CompAct
// compressed activations. Commands are thin: each is an options struct, a
// run function (what the tests call) and the cobra wiring that fills the
// options from the command line; the work is in internal/train and
// internal/data.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/train"
)

func main() {
	err := newRootCmd().ExecuteContext(context.Background())
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "compact:", err)
	os.Exit(exitCode(err))
}

// exitCode is the process status for a command's error: 130 for an
// interrupted run (as the shell reports SIGINT), 2 for bad input (the
// command line's, or a config or data file the library refused), 1 for
// everything else.
func exitCode(err error) int {
	var cli usageError
	switch {
	case err == nil:
		return 0
	case isJobFailure(err): // a data-parallel job's: the failed rank's status
		return jobExitStatus(err)
	case errors.Is(err, train.ErrInterrupted):
		return exitInterrupted
	case errors.As(err, &cli) || config.IsUsage(err):
		return 2
	}
	return 1
}
