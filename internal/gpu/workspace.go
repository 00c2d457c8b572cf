package gpu

// The CUDA backend's own allocations beyond the tensors it is asked for.
// memreport predicts them from here, so gpu/cuda sizes them with these.

// GemmWorkspaceBytes is the size of the cuBLASLt workspace the CUDA backend
// allocates once when it opens.
const GemmWorkspaceBytes = 32 << 20

// CUDAScratchFloats is the size, in floats, that the CUDA backend's shared
// scratch grows to in a training step of N = B*T tokens of width C with H
// query heads: the row-part sums of RMSNorm's weight gradient, attention's
// backward row statistics, and the global norm's partial sums.
func CUDAScratchFloats(B, T, C, H int) int64 {
	N := B * T
	return max(int64(RMSNormParts(N)*C), int64(B*H*T), SumSquaresParts)
}

// RMSNormParts is the number of row parts RMSNorm's weight gradient is
// summed in on CUDA: it depends only on N, so results are reproducible on
// any GPU.
func RMSNormParts(N int) int { return min(64, (N+255)/256) }

// SumSquaresParts is the number of partial sums of one tensor's squares.
const SumSquaresParts = 256
