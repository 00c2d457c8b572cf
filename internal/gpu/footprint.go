package gpu

// Footprint is what a backend kind stores and allocates on its own, for
// predicting a run's memory on a metering backend before (or without) the
// real backend: each backend package exports its own (cpu.Footprint,
// cuda.Footprint), sized by the same code its allocations use, and
// device.Footprint picks one by device name.
type Footprint interface {
	// ElementBytes is the bytes per element of Low and Full tensors.
	ElementBytes() (low, full int64)
	// WorkspaceBytes is what the backend allocates beyond the engine's
	// tensors for a training step of B sequences of T tokens of width C
	// with H query heads (library workspaces, kernel scratch).
	WorkspaceBytes(B, T, C, H int) int64
}
