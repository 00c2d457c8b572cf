//go:build linux && (amd64 || arm64)

package cuda

// Training steps as CUDA graphs (gpu.StepGrapher). A recorded step
// (record.go) is matched by its structure key against the graphs captured
// so far. On a match the graph is replayed: kernel nodes whose arguments
// differ from the ones the graph holds are patched
// (cuGraphExecKernelNodeSetParams), which is how the step's learning rate,
// bias corrections, stochastic-rounding step and loss scale reach a graph
// without a device-side copy of them; the step's host-to-device bytes
// (tokens and targets) go up in one staged copy into the graph's own
// device buffer, which the graph's first nodes copy to their tensors.
// GEMM scalars are host values cuBLASLt bakes into its launch: a GEMM whose
// alpha differed between the two steps that led to the capture (-lr of the
// compressed update under a schedule) is captured reading alpha and beta
// from that same uploaded buffer (CUBLASLT_POINTER_MODE_DEVICE, with the
// eager GEMM's algorithm); the others keep their alpha, and a step whose
// alpha differs from a kept one does not match the graph. A step with the
// structure of the previous one is captured; any other runs eagerly (the
// first step, an epoch change that regenerates projections, steps that
// read the loss).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/compact-llm/compact/internal/gpu"
)

// maxStepGraphs bounds the graphs kept: a run alternates between a handful
// of step structures at most (with and without a projection refresh...).
const maxStepGraphs = 4

// graphCache is a device's captured steps. Device thread only.
type graphCache struct {
	graphs  []*stepGraph // least recently used first
	lastKey []uint64     // the previous step's key when it ran eagerly
	lastAlp []float32    // and its GEMM alphas
	err     error        // a capture failed: graphs are off for the device
}

// stepGraph is one captured step.
type stepGraph struct {
	key     []uint64
	graph   uintptr       // CUgraph, kept: its nodes name the exec's nodes
	exec    uintptr       // CUgraphExec
	nodes   []uintptr     // the kernel node of each launch, in order
	args    [][]kernelArg // the arguments each kernel node holds now
	alphas  []float32     // each GEMM's alpha when baked in
	scalars []int64       // each GEMM's alpha, beta offset in scratch; -1: baked in
	uploads []int64       // each upload's offset in scratch
	scratch uintptr       // device buffer of the uploads (0 when none)
	upload  []byte        // host image of scratch, refilled every launch
}

// matches reports whether r can replay g: the same structure, and the
// alphas g baked in unchanged.
func (g *stepGraph) matches(r *recording) bool {
	if !slices.Equal(g.key, r.key) {
		return false
	}
	for j, off := range g.scalars {
		if off < 0 && math.Float32bits(g.alphas[j]) != math.Float32bits(r.alphas[j]) {
			return false
		}
	}
	return true
}

// uploadAlign keeps each upload in scratch on a 256-byte boundary, as the
// tensors it is copied to are.
const uploadAlign = 256

// uploadLayout places in scratch each opHtoD's bytes, then the alpha and
// beta of each GEMM with dev[j] (the others get -1), and returns the size.
func uploadLayout(ops []streamOp, dev []bool) (uploads, scalars []int64, total int64) {
	for i := range ops {
		if ops[i].kind == opHtoD {
			uploads = append(uploads, total)
			total += (ops[i].n + uploadAlign - 1) / uploadAlign * uploadAlign
		}
	}
	for _, v := range dev {
		off := int64(-1)
		if v {
			off, total = total, total+8
		}
		scalars = append(scalars, off)
	}
	return uploads, scalars, total
}

func (c *Backend) GraphSupport() error {
	var err error
	if e := c.dev.Do(func() error { err = c.dev.graphSupport(); return nil }); e != nil {
		return e
	}
	return err
}

func (d *device) graphSupport() error {
	if !cuGraph.ok {
		return errors.New("cuda: the driver lacks the CUDA graph calls (cuStreamGetCaptureInfo_v3 and others, CUDA >= 12.3)")
	}
	return d.graphs.err
}

func (c *Backend) BeginGraphStep() error {
	return c.dev.Do(func() error {
		if c.dev.rec != nil {
			return errors.New("cuda: BeginGraphStep: a step is already being recorded")
		}
		c.dev.rec = &recording{}
		return nil
	})
}

func (c *Backend) EndGraphStep(replay bool) (gpu.GraphRun, error) {
	run := gpu.GraphEager
	err := c.dev.Do(func() error {
		var err error
		run, err = c.dev.endStep(replay)
		return err
	})
	return run, err
}

// endStep queues the recorded step (see gpu.StepGrapher.EndGraphStep).
func (d *device) endStep(replay bool) (gpu.GraphRun, error) {
	r := d.rec
	if r == nil {
		return gpu.GraphEager, errors.New("cuda: EndGraphStep without BeginGraphStep")
	}
	d.rec = nil
	gc := &d.graphs
	if r.broken || !replay || d.graphSupport() != nil || len(r.ops) == 0 {
		gc.lastKey, gc.lastAlp = nil, nil
		return gpu.GraphEager, d.issueAll(r.ops)
	}
	if i := slices.IndexFunc(gc.graphs, func(g *stepGraph) bool { return g.matches(r) }); i >= 0 {
		g := gc.graphs[i]
		gc.graphs = append(slices.Delete(gc.graphs, i, i+1), g) // most recently used last
		return gpu.GraphReplayed, d.replay(g, r.ops)
	}
	if !slices.Equal(r.key, gc.lastKey) {
		gc.lastKey, gc.lastAlp = r.key, r.alphas
		return gpu.GraphEager, d.issueAll(r.ops)
	}
	dev := make([]bool, len(r.alphas)) // the alphas that changed since the last step
	for j, a := range r.alphas {
		dev[j] = math.Float32bits(a) != math.Float32bits(gc.lastAlp[j])
	}
	gc.lastKey, gc.lastAlp = nil, nil
	g, err := d.capture(r, dev)
	if err != nil { // nothing of the step has run: run it eagerly, and no more captures
		gc.err = fmt.Errorf("cuda: capturing a training step failed, graphs are off: %w", err)
		return gpu.GraphEager, d.issueAll(r.ops)
	}
	if len(gc.graphs) == maxStepGraphs {
		if err := d.destroyGraph(gc.graphs[0]); err != nil {
			return gpu.GraphEager, err
		}
		gc.graphs = gc.graphs[1:]
	}
	gc.graphs = append(gc.graphs, g)
	return gpu.GraphCaptured, d.launchGraph(g, r.ops)
}

// capture records r's work into a new graph and instantiates it; nothing
// runs. Uploads become device-to-device copies out of the graph's scratch,
// and the GEMMs with dev[j] read their scalars from it.
func (d *device) capture(r *recording, dev []bool) (*stepGraph, error) {
	g := &stepGraph{key: r.key, alphas: r.alphas}
	var total int64
	g.uploads, g.scalars, total = uploadLayout(r.ops, dev)
	var plans []*cudaGemmPlan // device-scalar plans, built before the capture
	j := 0
	for i := range r.ops {
		if op := &r.ops[i]; op.kind == opGemm {
			var p *cudaGemmPlan
			if dev[j] {
				k := op.gemm.key
				k.devScalars = true
				var err error
				if p, err = d.gemmPlan(k); err != nil {
					return nil, err
				}
			}
			plans = append(plans, p)
			j++
		}
	}
	if total > 0 {
		if err := cuCheck(cu.MemAlloc(&g.scratch, uintptr(total)), "cuMemAlloc_v2(%d bytes of graph uploads)", total); err != nil {
			return nil, err
		}
		g.upload = make([]byte, total)
	}
	if err := cuCheck(cuGraph.BeginCapture(d.stream, cuCaptureModeThreadLocal), "cuStreamBeginCapture_v2"); err != nil {
		return nil, errors.Join(err, d.destroyGraph(g))
	}
	captureErr := d.captureOps(g, r.ops, plans)
	var graph uintptr
	endErr := cuCheck(cuGraph.EndCapture(d.stream, &graph), "cuStreamEndCapture")
	g.graph = graph
	if err := errors.Join(captureErr, endErr); err != nil {
		return nil, errors.Join(err, d.destroyGraph(g))
	}
	if err := cuCheck(cuGraph.Instantiate(&g.exec, g.graph, 0), "cuGraphInstantiateWithFlags(%d operations)", len(r.ops)); err != nil {
		g.exec = 0
		return nil, errors.Join(err, d.destroyGraph(g))
	}
	return g, nil
}

// captureOps issues ops into the capturing stream and notes each kernel's
// node: the stream's one dependency right after the launch. plans holds
// the device-scalar plan of each GEMM that reads its scalars from scratch.
func (d *device) captureOps(g *stepGraph, ops []streamOp, plans []*cudaGemmPlan) error {
	up, gemm := 0, 0
	for i := range ops {
		op := &ops[i]
		switch {
		case op.kind == opHtoD:
			src := g.scratch + uintptr(g.uploads[up])
			up++
			if err := cuCheck(cu.MemcpyDtoDAsync(op.dst, src, uintptr(op.n), d.stream), "captured upload (%d bytes)", op.n); err != nil {
				return err
			}
			continue
		case op.kind == opGemm && plans[gemm] != nil:
			alpha := g.scratch + uintptr(g.scalars[gemm])
			if err := d.matmulDevScalars(op.gemm, plans[gemm], alpha, alpha+4); err != nil {
				return err
			}
			gemm++
			continue
		case op.kind == opGemm:
			gemm++
		}
		if err := d.issue(op); err != nil {
			return err
		}
		if op.kind != opLaunch {
			continue
		}
		var status int32
		var deps *uintptr
		var n uintptr
		if err := cuCheck(cuGraph.GetCaptureInfo(d.stream, &status, nil, nil, &deps, nil, &n), "cuStreamGetCaptureInfo_v3"); err != nil {
			return err
		}
		if status != cuCaptureStatusActive || n != 1 || deps == nil {
			return fmt.Errorf("cuda: capture of %s: status %d with %d dependencies, want one active", op.fn.name, status, n)
		}
		g.nodes = append(g.nodes, *deps)
		g.args = append(g.args, op.args)
	}
	return nil
}

// replay patches the kernel nodes whose arguments changed and launches g.
func (d *device) replay(g *stepGraph, ops []streamOp) error {
	k := 0
	for i := range ops {
		op := &ops[i]
		if op.kind != opLaunch {
			continue
		}
		if !slices.Equal(op.args, g.args[k]) {
			if err := setKernelArgs(g.exec, g.nodes[k], op); err != nil {
				return err
			}
			g.args[k] = op.args
		}
		k++
	}
	return d.launchGraph(g, ops)
}

// setKernelArgs gives the exec's kernel node the arguments of op (same
// kernel, grid and block: the key says so). Later launches of the exec see
// them; launches already queued keep theirs.
func setKernelArgs(exec, node uintptr, op *streamOp) error {
	r := kernelParams(op.args, func(params unsafe.Pointer) cuResult {
		p := cuKernelNodeParams{fn: op.fn.h, gridX: op.grid[0], gridY: op.grid[1], gridZ: op.grid[2],
			blockX: op.block[0], blockY: op.block[1], blockZ: op.block[2], sharedMem: op.smem, params: params}
		return cuGraph.ExecKernelNodeSetArgs(exec, node, &p)
	})
	return cuCheck(r, "cuGraphExecKernelNodeSetParams_v2(%s)", op.fn.name)
}

// launchGraph uploads the step's bytes and GEMM scalars into g's scratch,
// ordered after the previous launch of g (which has read them by then),
// and launches g.
func (d *device) launchGraph(g *stepGraph, ops []streamOp) error {
	if g.scratch != 0 {
		up, gemm := 0, 0
		for i := range ops {
			switch op := &ops[i]; op.kind {
			case opHtoD:
				copy(g.upload[g.uploads[up]:], op.payload)
				up++
			case opGemm:
				if off := g.scalars[gemm]; off >= 0 {
					binary.LittleEndian.PutUint32(g.upload[off:], math.Float32bits(op.gemm.scal[0]))
					binary.LittleEndian.PutUint32(g.upload[off+4:], math.Float32bits(op.gemm.scal[1]))
				}
				gemm++
			}
		}
		if err := d.stagedHtoD(g.scratch, unsafe.Pointer(unsafe.SliceData(g.upload)), int64(len(g.upload))); err != nil {
			return err
		}
	}
	return cuCheck(cuGraph.Launch(g.exec, d.stream), "cuGraphLaunch(%d kernels)", len(g.nodes))
}

// destroyGraph frees g once the stream is idle (a launch may still read
// its scratch).
func (d *device) destroyGraph(g *stepGraph) error {
	errs := []error{cuCheck(cu.StreamSynchronize(d.stream), "cuStreamSynchronize before destroying a graph")}
	if g.exec != 0 {
		errs = append(errs, cuCheck(cuGraph.ExecDestroy(g.exec), "cuGraphExecDestroy"))
	}
	if g.graph != 0 {
		errs = append(errs, cuCheck(cuGraph.Destroy(g.graph), "cuGraphDestroy"))
	}
	if g.scratch != 0 {
		errs = append(errs, cuCheck(cu.MemFree(g.scratch), "cuMemFree_v2(graph uploads)"))
	}
	*g = stepGraph{}
	return errors.Join(errs...)
}

// graphsRelease destroys every graph (device release, stream synchronised).
func (d *device) graphsRelease() error {
	var errs []error
	for _, g := range d.graphs.graphs {
		errs = append(errs, d.destroyGraph(g))
	}
	d.graphs = graphCache{}
	d.rec = nil
	return errors.Join(errs...)
}
