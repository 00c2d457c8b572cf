package config

// Values of train.cuda_graph: whether a step's device work is replayed as
// one CUDA graph (gpu.StepGrapher). Graphs need CUDA, one process and
// master-free weights: with an fp32 master the replayed compressed update
// (its GEMM reads a changing alpha from device memory) drifted from the eager
// step on the H200 (loss 1.3e-4 apart after 6 steps), while master-free steps
// replay to the bit. auto uses graphs where they can run; on fails where
// they cannot; off never.
const (
	GraphAuto = "auto"
	GraphOn   = "on"
	GraphOff  = "off"
)

// CUDAGraphModes lists the train.cuda_graph values.
var CUDAGraphModes = []string{GraphAuto, GraphOn, GraphOff}
