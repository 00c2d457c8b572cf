package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/compact-llm/compact/internal/dist"
	"github.com/compact-llm/compact/internal/gpu/device"
	"github.com/spf13/cobra"
)

// jobFlags is --gpus on the training commands: data-parallel training over
// N local processes, one per GPU (docs/multigpu.md).
type jobFlags struct{ gpus int }

func (j *jobFlags) register(c *cobra.Command) {
	c.Flags().IntVar(&j.gpus, "gpus", 0, "train data-parallel on N local GPUs, one process each (with --device cpu: N CPU processes); torchrun-style RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT join one rank instead")
}

// start decides how this invocation takes part in training. Under torchrun
// variables it is one rank (env set). With --gpus N it launches N ranks of
// this same command, waits for them and returns launched = true with their
// outcome. Otherwise it is a plain run (env nil).
func (j *jobFlags) start(given flagsGiven, dev string, s streams) (env *dist.Env, launched bool, err error) {
	e, found, err := dist.FromEnv(os.Getenv)
	if err != nil {
		return nil, false, usagef("%v", err)
	}
	set := given["gpus"]
	if found {
		if set && j.gpus != e.World {
			return nil, false, usagef("--gpus %d but WORLD_SIZE=%d: under a launcher, leave --gpus out", j.gpus, e.World)
		}
		dist.HangExit = time.Minute // a rank stuck in a collective of a dead job
		return &e, false, nil
	}
	if !set {
		return nil, false, nil
	}
	if j.gpus < 1 {
		return nil, false, usagef("--gpus %d: must be at least 1", j.gpus)
	}
	onCPU := dev == device.CPU
	if !onCPU {
		n, cerr := device.CUDACount()
		switch {
		case cerr != nil && dev == device.CUDA:
			return nil, false, fmt.Errorf("--gpus %d: %w", j.gpus, cerr)
		case cerr != nil:
			fmt.Fprintf(s.err, "--gpus %d: no usable CUDA device (%s): running CPU processes\n", j.gpus, device.Brief(cerr))
			onCPU = true
		case j.gpus > n:
			return nil, false, usagef("--gpus %d: only %d CUDA device(s) visible", j.gpus, n)
		}
	}
	if limit := maxCPURanks(); onCPU && j.gpus > limit {
		return nil, false, usagef("--gpus %d: on the CPU each rank is a whole process with its own copy of the model; at most %d here (the larger of 8 and the %d cores)", j.gpus, limit, runtime.NumCPU())
	}
	self, err := os.Executable()
	if err != nil {
		return nil, true, fmt.Errorf("--gpus: cannot find this binary to start the ranks: %w", err)
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	l := &dist.Launcher{Procs: j.gpus, Program: self, Args: os.Args[1:], Env: os.Environ(), Out: s.err}
	return nil, true, l.Run(sigs)
}

// maxCPURanks is the most CPU ranks --gpus starts on this host: a rank per
// core, or 8 where there are fewer cores (the CPU job is for tests and for
// trying the launcher, not for speed).
func maxCPURanks() int { return max(8, runtime.NumCPU()) }

// isJobFailure reports whether err ended a data-parallel job: a rank's
// failure seen by the launcher, or another rank's seen by this one.
func isJobFailure(err error) bool {
	var ee *dist.ExitError
	return errors.As(err, &ee) || dist.IsPeerFailure(err)
}

// jobExitStatus is the status for such an error: the failed rank's own,
// or ExitPeerFailed for a rank that stopped because another failed.
func jobExitStatus(err error) int {
	var ee *dist.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return dist.ExitPeerFailed
}
