package cpu

// Footprint is the CPU backend's: float32 for every tensor and no
// workspace of its own (scratch lives in Go slices, not in the accounting).
var Footprint footprint

type footprint struct{}

func (footprint) ElementBytes() (low, full int64)     { return 4, 4 }
func (footprint) WorkspaceBytes(B, T, C, H int) int64 { return 0 }
