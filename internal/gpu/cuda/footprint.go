package cuda

// What the CUDA backend allocates beyond the engine's tensors, sized here
// once: the backend allocates by these, and Footprint reports them to the
// memory prediction (through device.Footprint), so the two cannot drift.
// Pure arithmetic, built on every platform.

// Footprint is the CUDA backend's: bf16 Low tensors, fp32 Full ones, the
// cuBLASLt workspace and the kernels' shared scratch.
var Footprint footprint

type footprint struct{}

func (footprint) ElementBytes() (low, full int64) { return 2, 4 }

func (footprint) WorkspaceBytes(B, T, C, H int) int64 {
	return gemmWorkspaceBytes + 4*scratchFloatsFor(B, T, C, H)
}

// gemmWorkspaceBytes is the size of the cuBLASLt workspace the backend
// allocates once when it opens.
const gemmWorkspaceBytes = 32 << 20

// scratchFloatsFor is the size, in floats, that the backend's shared
// scratch grows to in a training step of N = B*T tokens of width C with H
// query heads: the row-part sums of RMSNorm's weight gradient, attention's
// backward row statistics, and the global norm's partial sums.
func scratchFloatsFor(B, T, C, H int) int64 {
	N := B * T
	return max(int64(rmsNormParts(N)*C), int64(B*H*T), sumSquaresParts)
}

// rmsNormParts is the number of row parts RMSNorm's weight gradient is
// summed in: it depends only on N, so results are reproducible on any GPU.
func rmsNormParts(N int) int { return min(64, (N+255)/256) }

// sumSquaresParts is the number of partial sums of one tensor's squares.
const sumSquaresParts = 256
