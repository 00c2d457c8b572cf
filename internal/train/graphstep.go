package train

import (
	"errors"
	"fmt"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
)

// stepGraphs is the step grapher train.cuda_graph gives steps on be: nil
// for eager steps. Data parallel steps run eagerly (their collectives wait
// on the stream in the middle of a step).
func stepGraphs(cfg config.Config, be gpu.Backend, dataParallel bool) (gpu.StepGrapher, error) {
	mode := cfg.Train.CUDAGraph
	if mode == config.GraphOff {
		return nil, nil
	}
	why := graphsBlocked(cfg, be, dataParallel)
	if why == nil {
		return be.(gpu.StepGrapher), nil
	}
	if mode == config.GraphOn {
		return nil, config.Usagef("train.cuda_graph = on: %v (use auto or off)", why)
	}
	return nil, nil
}

// graphsBlocked says why steps of cfg on be cannot run as graphs (nil:
// they can).
func graphsBlocked(cfg config.Config, be gpu.Backend, dataParallel bool) error {
	g, ok := be.(gpu.StepGrapher)
	switch {
	case !ok:
		return fmt.Errorf("the %s backend has no graphs", be.Name())
	case dataParallel:
		return errors.New("data parallel steps run eagerly")
	case !cfg.MasterFree():
		return errors.New("graphs need master-free weights (train.weights bf16_sr, the default for CompAct runs): with an fp32 master a replayed update drifts from the eager one")
	}
	return g.GraphSupport()
}

// graphCounts counts how steps were queued, by gpu.GraphRun.
type graphCounts [gpu.GraphReplayed + 1]int

// step takes one optimizer step (stepEager), recording its device work for
// a graph when the step does not read results back (read steps wait for
// the device anyway).
func (t *Trainer) step(read bool) (loss, gradNorm float64, err error) {
	g := t.graphs
	if read || g == nil {
		t.graphRuns[gpu.GraphEager]++
		return t.stepEager(read)
	}
	if err := g.BeginGraphStep(); err != nil {
		return 0, 0, err
	}
	loss, gradNorm, err = t.stepEager(read)
	run, endErr := g.EndGraphStep(err == nil)
	if err != nil {
		return 0, 0, errors.Join(err, endErr)
	}
	if endErr != nil {
		return 0, 0, fmt.Errorf("step %d: %w", t.opt.Step, endErr)
	}
	t.graphRuns[run]++
	if off := g.GraphSupport(); off != nil { // a capture failed: say so once, carry on eagerly
		t.logf("cuda graphs: %v", off)
		t.graphs = nil
	}
	return loss, gradNorm, nil
}
