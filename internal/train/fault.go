package train

import (
	"encoding/json"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/compact-llm/compact/internal/data"
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

// PoisonEnv names a test hook that plants an instability the way a bad
// batch does in a large run: COMPACT_FAULT_POISON=S:F makes the optimizer
// step whose batches include training sample S (counted from the start of
// the data stream, across epochs) run at F times its learning rate. A
// rollback that skips the batches since its checkpoint never meets the
// sample again. The training-health tests use it; otherwise it costs one
// environment lookup per step.
const PoisonEnv = "COMPACT_FAULT_POISON"

// poisonFactor returns the learning-rate factor of a step whose batches
// run from loader state before to after (1 unless the hook hits it).
func poisonFactor(before, after json.RawMessage) float64 {
	v := os.Getenv(PoisonEnv)
	if v == "" {
		return 1
	}
	a, b, ok := strings.Cut(v, ":")
	sample, err1 := strconv.ParseInt(a, 10, 64)
	factor, err2 := strconv.ParseFloat(b, 64)
	if !ok || err1 != nil || err2 != nil {
		return 1
	}
	if sampleIndex(before) <= sample && sample < sampleIndex(after) {
		return factor
	}
	return 1
}

// sampleIndex is how many samples a loader in state raw has handed out.
func sampleIndex(raw json.RawMessage) int64 {
	var st data.LoaderState
	if json.Unmarshal(raw, &st) != nil {
		return -1
	}
	return int64(st.Epoch)*st.SamplesPerEpoch + st.Position
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
