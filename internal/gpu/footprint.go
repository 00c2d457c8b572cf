package gpu

// What a backend kind stores and allocates on its own, for predicting a
// run's memory on a metering backend before the real one exists. The CUDA
// backend (gpu/cuda) sizes its own allocations with these, so the
// prediction follows it.

// cudaName is the CUDA backend's Name and its device name (device.CUDA).
const cudaName = "cuda"

// ElementBytes returns the bytes per element of Low and Full tensors on a
// device: the CPU keeps float32 everywhere, CUDA bf16 for Low.
func ElementBytes(device string) (low, full int64) {
	if device == cudaName {
		return 2, 4
	}
	return 4, 4
}

// BackendWorkspaceBytes is what the backend of a device allocates beyond the
// engine's tensors for a training step of B sequences of T tokens of width
// C with H query heads: on CUDA the cuBLASLt workspace and the kernels'
// scratch, nothing on the CPU.
func BackendWorkspaceBytes(device string, B, T, C, H int) int64 {
	if device != cudaName {
		return 0
	}
	return int64(GemmWorkspaceBytes) + 4*CUDAScratchFloats(B, T, C, H)
}

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
