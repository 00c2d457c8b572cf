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
// with --resume.
func resumeCommand() string {
	args := []string{os.Args[0]}
	has := false
	for _, a := range os.Args[1:] {
		if a == "--resume" || a == "--resume=true" {
			has = true
		}
		if a == "--overwrite" || a == "--overwrite=true" {
			continue // done once; --resume and --overwrite exclude each other
		}
		args = append(args, shellQuote(a))
	}
	if !has {
		args = append(args, "--resume")
	}
	return strings.Join(args, " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./:,@+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
