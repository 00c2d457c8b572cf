//go:build linux && (amd64 || arm64)

package cuda

import "unsafe"

// CUDA graph entry points (stream capture, instantiation, replay and the
// patching of a kernel node's arguments). Bound optionally: a driver without
// them still trains, eagerly. Prototypes and enum values are cuda.h's
// (CUDA 13.0); the names are the symbols its #defines map to.
var cuGraph struct {
	BeginCapture          func(stream uintptr, mode int32) cuResult     // cuStreamBeginCapture_v2(CUstream, CUstreamCaptureMode)
	EndCapture            func(stream uintptr, graph *uintptr) cuResult // cuStreamEndCapture(CUstream, CUgraph*)
	GetCaptureInfo        func(stream uintptr, status *int32, id *uint64, graph *uintptr, deps **uintptr, edges unsafe.Pointer, n *uintptr) cuResult
	Instantiate           func(exec *uintptr, graph uintptr, flags uint64) cuResult // cuGraphInstantiateWithFlags(CUgraphExec*, CUgraph, unsigned long long)
	Launch                func(exec, stream uintptr) cuResult                       // cuGraphLaunch(CUgraphExec, CUstream)
	ExecKernelNodeSetArgs func(exec, node uintptr, p *cuKernelNodeParams) cuResult  // cuGraphExecKernelNodeSetParams_v2(CUgraphExec, CUgraphNode, const CUDA_KERNEL_NODE_PARAMS*)
	ExecDestroy           func(exec uintptr) cuResult                               // cuGraphExecDestroy(CUgraphExec)
	Destroy               func(graph uintptr) cuResult                              // cuGraphDestroy(CUgraph)
	// GetCaptureInfo is cuStreamGetCaptureInfo_v3(CUstream, CUstreamCaptureStatus*,
	// cuuint64_t* id, CUgraph*, const CUgraphNode** deps, const CUgraphEdgeData** edges, size_t* n).

	ok bool // every symbol above was found
}

// cuda.h: enum CUstreamCaptureMode_enum and CUstreamCaptureStatus_enum.
const (
	cuCaptureModeThreadLocal int32 = 1 // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
	cuCaptureStatusActive    int32 = 1 // CU_STREAM_CAPTURE_STATUS_ACTIVE
)

// cuKernelNodeParams is CUDA_KERNEL_NODE_PARAMS_v2 (cuda.h), the struct
// cuGraphExecKernelNodeSetParams_v2 reads.
type cuKernelNodeParams struct {
	fn                     uintptr // CUfunction
	gridX, gridY, gridZ    uint32
	blockX, blockY, blockZ uint32
	sharedMem              uint32
	_                      uint32         // padding before the pointers
	params                 unsafe.Pointer // void** kernelParams
	_                      unsafe.Pointer // void** extra (NULL)
	_                      uintptr        // CUkernel, unused when fn is set
	_                      uintptr        // CUcontext, ignored when fn is set
}

// The layout cuda.h gives the struct on LP64: pointers at 40, size 72.
var (
	_ [40]byte = [unsafe.Offsetof(cuKernelNodeParams{}.params)]byte{}
	_ [72]byte = [unsafe.Sizeof(cuKernelNodeParams{})]byte{}
)

// bindGraphs binds the graph entry points if the driver has them all.
func bindGraphs(b *cudaBinder) {
	g := &cuGraph
	g.ok = b.optional(&g.BeginCapture, "cuStreamBeginCapture_v2") &&
		b.optional(&g.EndCapture, "cuStreamEndCapture") &&
		b.optional(&g.GetCaptureInfo, "cuStreamGetCaptureInfo_v3") &&
		b.optional(&g.Instantiate, "cuGraphInstantiateWithFlags") &&
		b.optional(&g.Launch, "cuGraphLaunch") &&
		b.optional(&g.ExecKernelNodeSetArgs, "cuGraphExecKernelNodeSetParams_v2") &&
		b.optional(&g.ExecDestroy, "cuGraphExecDestroy") &&
		b.optional(&g.Destroy, "cuGraphDestroy")
}
