package gpu

// What a backend kind stores and allocates on its own, for predicting a
// run's memory on a metering backend before the real one exists.

// ElementBytes returns the bytes per element of Low and Full tensors on a
// device: the CPU keeps float32 everywhere, CUDA bf16 for Low.
func ElementBytes(device string) (low, full int64) {
	if device == DeviceCUDA {
		return 2, 4
	}
	return 4, 4
}

// BackendWorkspaceBytes is what the backend of a device allocates beyond the
// engine's tensors for a training step of B sequences of T tokens of width
// C with H query heads: on CUDA the cuBLASLt workspace and the kernels'
// scratch, nothing on the CPU.
func BackendWorkspaceBytes(device string, B, T, C, H int) int64 {
	if device != DeviceCUDA {
		return 0
	}
	return int64(GemmWorkspaceBytes) + 4*CUDAScratchFloats(B, T, C, H)
}
