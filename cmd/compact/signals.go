package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// interruptContext is cancelled by the first SIGINT/SIGTERM: training
// abandons the step in flight and writes the checkpoint of the last
// complete one. A second signal exits at once without writing anything
// (a checkpoint being written is never renamed into place half done).
func interruptContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
		case <-done:
			return
		}
		fmt.Fprintln(os.Stderr, "\ninterrupt: stopping the step in flight and saving the last complete step (interrupt again to exit at once without saving)")
		cancel()
		select {
		case <-sigs:
			fmt.Fprintln(os.Stderr, "second interrupt: exiting without writing a checkpoint")
			os.Exit(exitInterrupted)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// exitInterrupted is the shell's status for a process ended by SIGINT.
const exitInterrupted = 130

// resumeCommand is the command line that continues this run: this one
// with --resume, which takes the newest checkpoint in --out. A --resume
// PATH, --weights-only and --overwrite were done once and are dropped: the
// checkpoints this run writes are complete and in --out.
func resumeCommand() string {
	args := []string{os.Args[0]}
	in := os.Args[1:]
	for i := 0; i < len(in); i++ {
		a := in[i]
		name, _, _ := strings.Cut(a, "=")
		switch name {
		case "--resume":
			if a == name && i+1 < len(in) && !strings.HasPrefix(in[i+1], "-") {
				i++ // --resume PATH
			}
			continue
		case "--weights-only", "--overwrite":
			continue
		}
		args = append(args, shellQuote(a))
	}
	return strings.Join(append(args, "--resume"), " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./:,@+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
