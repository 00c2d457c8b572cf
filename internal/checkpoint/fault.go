package checkpoint

// Test hooks of the crash-safety tests: a process killed, or a disk full,
// in the middle of writing a checkpoint.

import (
	"io"
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

// DiskFullEnv names a test hook: COMPACT_FAULT_DISK_FULL_CHECKPOINT=N makes
// every file of the checkpoint of step N fail as a full disk does, after
// its first 4 KiB.
const DiskFullEnv = "COMPACT_FAULT_DISK_FULL_CHECKPOINT"

// faultDiskFull returns w, or under DiskFullEnv for step a writer to path
// that fails with ENOSPC.
func faultDiskFull(step int, path string, w io.Writer) io.Writer {
	if n, err := strconv.Atoi(os.Getenv(DiskFullEnv)); err == nil && n == step {
		return &fullDisk{w: w, path: path, left: 4096}
	}
	return w
}

type fullDisk struct {
	w    io.Writer
	path string
	left int
}

func (d *fullDisk) Write(p []byte) (int, error) {
	if len(p) <= d.left {
		d.left -= len(p)
		return d.w.Write(p)
	}
	n, _ := d.w.Write(p[:d.left])
	d.left = 0
	return n, &os.PathError{Op: "write", Path: d.path, Err: syscall.ENOSPC}
}
