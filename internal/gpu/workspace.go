package gpu

// CUDAScratchFloats is the size, in floats, that the CUDA backend's shared
// scratch grows to in a training step of N = B*T tokens of width C with H
// query heads: the row-part sums of RMSNorm's weight gradient, attention's
// backward row statistics, and the global norm's partial sums. memreport
// predicts the workspace from it, so it must follow cuda_backend.go.
func CUDAScratchFloats(B, T, C, H int) int64 {
	N := B * T
	parts := min(64, (N+255)/256)
	return max(int64(parts*C), int64(B*H*T), sumSquaresParts)
}

// sumSquaresParts is the number of partial sums of one tensor's squares.
const sumSquaresParts = 256
