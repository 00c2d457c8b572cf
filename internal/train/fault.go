package train

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"

	"github.com/compact-llm/compact/internal/data"
)

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
