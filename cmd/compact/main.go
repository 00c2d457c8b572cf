// Command compact pretrains and fine-tunes LLaMA-family models with CompAct
// compressed activations. Commands are thin: they parse flags and call into
// internal/train and internal/data.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/compact-llm/compact/internal/train"
)

func main() {
	err := newRootCmd().Execute()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "compact:", err)
	if code, ok := exitStatus(err); ok { // a data-parallel job's
		os.Exit(code)
	}
	if errors.Is(err, train.ErrInterrupted) {
		os.Exit(exitInterrupted)
	}
	var usage *train.UsageError
	var cli usageError
	if errors.As(err, &usage) || errors.As(err, &cli) {
		os.Exit(2)
	}
	os.Exit(1)
}
