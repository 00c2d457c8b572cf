package gpu

// StepGrapher is implemented by backends that can replay the device work of
// a training step as one graph (CUDA graphs): a step of ~1000 small
// launches then costs one launch on the host and no gaps between kernels on
// the device. The step's host code runs unchanged every step; the backend
// records what it queues, and a step whose work has the same structure as
// a captured one (the same kernels, grids, GEMMs, copies, in the same order)
// replays that graph with the kernel arguments of this step (learning rate,
// bias corrections, rounding keys, loss scale: whatever changed) and this
// step's uploaded bytes (tokens). Anything that waits for the device in the
// middle of a step (reading the loss, an event, a collective) queues the
// recorded work at once and the rest of the step runs eagerly, so the
// results are those of the eager step in every case.
type StepGrapher interface {
	// GraphSupport is nil when steps can be captured, else why not (an old
	// driver, or a capture that failed and turned graphs off).
	GraphSupport() error
	// BeginGraphStep starts recording the step's device work.
	BeginGraphStep() error
	// EndGraphStep queues the recorded work: by replaying a captured graph of
	// the same structure, by capturing one when the step has the structure
	// of the previous step (a step seen once is not worth a capture), else
	// eagerly. With replay false it queues eagerly (an abandoned step).
	EndGraphStep(replay bool) (GraphRun, error)
}

// GraphRun says how EndGraphStep queued a step.
type GraphRun int

const (
	GraphEager    GraphRun = iota // launch by launch
	GraphCaptured                 // captured into a new graph, then launched
	GraphReplayed                 // a graph captured earlier, launched again
)

func (r GraphRun) String() string {
	switch r {
	case GraphCaptured:
		return "captured"
	case GraphReplayed:
		return "replayed"
	}
	return "eager"
}
