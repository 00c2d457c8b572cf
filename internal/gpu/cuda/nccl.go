//go:build linux && (amd64 || arm64)

package cuda

// NCCL, bound at run time through purego like the other CUDA libraries (no
// cgo, no NCCL at build time): the backend's gpu.Collectives. Prototypes
// and enum values are those of nccl.h 2.28 (stable since 2.x). The job
// around the communicator (rendezvous, liveness) is internal/dist's.

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/ebitengine/purego"
)

// nccl.h: NCCL_UNIQUE_ID_BYTES and typedef struct { char internal[128]; } ncclUniqueId.
const ncclUniqueIDBytes = 128

type ncclUniqueID struct{ internal [ncclUniqueIDBytes]byte }

// nccl.h: ncclResult_t, ncclRedOp_t, ncclDataType_t.
const (
	ncclSuccess    int32 = 0
	ncclInProgress int32 = 7

	ncclSum int32 = 0

	ncclInt32    int32 = 2
	ncclFloat32  int32 = 7
	ncclBfloat16 int32 = 9
)

// ncclAPI holds the entry points (ncclComm_t and cudaStream_t are pointers).
var ncclAPI struct {
	GetVersion           func(v *int32) int32                                                               // ncclGetVersion(int*)
	GetUniqueID          func(id *ncclUniqueID) int32                                                       // ncclGetUniqueId(ncclUniqueId*)
	CommInitRank         func(comm *uintptr, nranks int32, id ncclUniqueID, rank int32) int32               // ncclCommInitRank(ncclComm_t*, int, ncclUniqueId, int)
	CommInitRankScalable func(comm *uintptr, nranks, rank, nID int32, ids *ncclUniqueID, cfg uintptr) int32 // ncclCommInitRankScalable(ncclComm_t*, int, int, int, ncclUniqueId*, ncclConfig_t*)
	AllReduce            func(send, recv, count uintptr, dtype, op int32, comm, stream uintptr) int32       // ncclAllReduce(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t)
	Broadcast            func(send, recv, count uintptr, dtype, root int32, comm, stream uintptr) int32     // ncclBroadcast(const void*, void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t)
	Reduce               func(send, recv, count uintptr, dtype, op, root int32, comm, stream uintptr) int32 // ncclReduce(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, int, ncclComm_t, cudaStream_t)
	ReduceScatter        func(send, recv, recvCount uintptr, dtype, op int32, comm, stream uintptr) int32   // ncclReduceScatter(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t)
	AllGather            func(send, recv, sendCount uintptr, dtype int32, comm, stream uintptr) int32       // ncclAllGather(const void*, void*, size_t, ncclDataType_t, ncclComm_t, cudaStream_t)
	GroupStart           func() int32                                                                       // ncclGroupStart(void)
	GroupEnd             func() int32                                                                       // ncclGroupEnd(void)
	CommAbort            func(comm uintptr) int32                                                           // ncclCommAbort(ncclComm_t)
	CommDestroy          func(comm uintptr) int32                                                           // ncclCommDestroy(ncclComm_t)
	GetErrorString       func(r int32) *byte                                                                // const char* ncclGetErrorString(ncclResult_t)
	GetLastError         func(comm uintptr) *byte                                                           // const char* ncclGetLastError(ncclComm_t)
}

var (
	ncclOnce     sync.Once
	ncclLoadErr  error
	ncclScalable bool
)

// ncclLibPaths are tried in order: $COMPACT_NCCL_LIB, the loader's own
// search for the soname, then the CUDA and distribution library directories.
func ncclLibPaths() []string {
	var ps []string
	if p := os.Getenv("COMPACT_NCCL_LIB"); p != "" {
		ps = append(ps, p)
	}
	ps = append(ps, "libnccl.so.2")
	if h := os.Getenv("CUDA_HOME"); h != "" {
		ps = append(ps, filepath.Join(h, "lib64", "libnccl.so.2"))
	}
	return append(ps, "/usr/local/cuda/lib64/libnccl.so.2", "/usr/lib/x86_64-linux-gnu/libnccl.so.2",
		"/usr/lib/aarch64-linux-gnu/libnccl.so.2", "/usr/lib64/libnccl.so.2")
}

func loadNCCL() error {
	ncclOnce.Do(func() {
		var h uintptr
		var tried []string
		for _, p := range ncclLibPaths() {
			var err error
			if h, err = purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_LOCAL); err == nil {
				break
			}
			tried = append(tried, fmt.Sprintf("%s (%v)", p, err))
		}
		if h == 0 {
			ncclLoadErr = fmt.Errorf("nccl: cannot load libnccl.so.2 (multi-GPU training needs NCCL 2; set COMPACT_NCCL_LIB or LD_LIBRARY_PATH). Tried: %v", tried)
			return
		}
		bind := func(fptr any, name string, required bool) bool {
			sym, err := purego.Dlsym(h, name)
			if err != nil || sym == 0 {
				if required && ncclLoadErr == nil {
					ncclLoadErr = fmt.Errorf("nccl: libnccl.so.2 lacks %s (NCCL too old?)", name)
				}
				return false
			}
			purego.RegisterFunc(fptr, sym)
			return true
		}
		a := &ncclAPI
		bind(&a.GetVersion, "ncclGetVersion", true)
		bind(&a.GetUniqueID, "ncclGetUniqueId", true)
		bind(&a.CommInitRank, "ncclCommInitRank", true)
		bind(&a.AllReduce, "ncclAllReduce", true)
		bind(&a.Broadcast, "ncclBroadcast", true)
		bind(&a.Reduce, "ncclReduce", true)
		bind(&a.ReduceScatter, "ncclReduceScatter", true)
		bind(&a.AllGather, "ncclAllGather", true)
		bind(&a.GroupStart, "ncclGroupStart", true)
		bind(&a.GroupEnd, "ncclGroupEnd", true)
		bind(&a.CommAbort, "ncclCommAbort", true)
		bind(&a.CommDestroy, "ncclCommDestroy", true)
		bind(&a.GetErrorString, "ncclGetErrorString", true)
		bind(&a.GetLastError, "ncclGetLastError", false)
		// The pointer form avoids passing the 128-byte id by value (NCCL 2.23+).
		ncclScalable = bind(&a.CommInitRankScalable, "ncclCommInitRankScalable", false)
	})
	return ncclLoadErr
}

// ncclCheck turns a result into an error naming the call and NCCL's words.
func ncclCheck(r int32, comm uintptr, what string) error {
	if r == ncclSuccess {
		return nil
	}
	msg := cudaGoString(ncclAPI.GetErrorString(r))
	if comm != 0 && ncclAPI.GetLastError != nil {
		if last := cudaGoString(ncclAPI.GetLastError(comm)); last != "" {
			msg += ": " + last
		}
	}
	return fmt.Errorf("nccl: %s: %s (ncclResult_t %d)", what, msg, r)
}

var _ gpu.Collectives = (*Backend)(nil)

// NewCommID makes an NCCL unique id (rank 0 hands it to the others).
func (c *Backend) NewCommID() ([]byte, error) {
	if err := loadNCCL(); err != nil {
		return nil, err
	}
	var id ncclUniqueID
	if err := ncclCheck(ncclAPI.GetUniqueID(&id), 0, "ncclGetUniqueId"); err != nil {
		return nil, err
	}
	return id.internal[:], nil
}

// OpenComm joins the NCCL communicator of id on this backend's device and
// stream. ncclCommInitRank waits for every rank; it runs on the device
// thread, where the device's primary context is current, so NCCL binds to it.
func (c *Backend) OpenComm(id []byte, rank, world int) (gpu.DeviceComm, error) {
	if err := loadNCCL(); err != nil {
		return nil, err
	}
	if len(id) != ncclUniqueIDBytes {
		return nil, fmt.Errorf("nccl: a %d-byte unique id, want %d", len(id), ncclUniqueIDBytes)
	}
	var uid ncclUniqueID
	copy(uid.internal[:], id)
	n := &ncclComm{be: c, rank: rank, world: world}
	err := c.onStream(func(uintptr) error {
		if ncclScalable {
			return ncclCheck(ncclAPI.CommInitRankScalable(&n.comm, int32(world), int32(rank), 1, &uid, 0), 0, "ncclCommInitRankScalable")
		}
		return ncclCheck(ncclAPI.CommInitRank(&n.comm, int32(world), uid, int32(rank)), 0, "ncclCommInitRank")
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// ncclComm is one rank's NCCL communicator on the backend's device.
type ncclComm struct {
	be          *Backend
	rank, world int
	comm        uintptr
	abort       sync.Once
	// side is the communicator's own stream (created by the first Issue);
	// onSide, while an issued f runs, the stream its collectives go to.
	side   *sideStream
	onSide uintptr
}

// Issue queues f's collectives on the side stream, after the compute
// stream's work so far (an event the side stream waits on); join makes the
// compute stream wait for them (an event recorded after them). NCCL calls
// only enqueue, so f returns at once and the reduction runs on the GPU
// while the caller queues its next kernels.
func (c *ncclComm) Issue(f func() error) (func() error, error) {
	if c.side == nil {
		s, err := c.be.newSideStream()
		if err != nil {
			return nil, err
		}
		c.side = s
	}
	done, err := c.side.fork(func(s uintptr) error {
		c.onSide = s
		defer func() { c.onSide = 0 }()
		return f()
	})
	if err != nil {
		return nil, err
	}
	return func() error { return c.side.join(done) }, nil
}

func ncclType(t *gpu.Tensor) int32 {
	switch t.Prec {
	case gpu.Low:
		return ncclBfloat16
	case gpu.Int32:
		return ncclInt32
	}
	return ncclFloat32
}

// collective enqueues f on the device's stream (on the device thread, after
// the work queued before it), or on the side stream inside Issue.
func (c *ncclComm) collective(what string, f func(stream uintptr) int32) error {
	return c.be.onStream(func(s uintptr) error {
		if c.onSide != 0 {
			s = c.onSide
		}
		return ncclCheck(f(s), c.comm, what)
	})
}

func (c *ncclComm) AllReduce(t *gpu.Tensor) error {
	p := addr(t)
	return c.collective("ncclAllReduce "+t.Name, func(s uintptr) int32 {
		return ncclAPI.AllReduce(p, p, uintptr(t.Len()), ncclType(t), ncclSum, c.comm, s)
	})
}

func (c *ncclComm) Broadcast(t *gpu.Tensor, root int) error {
	p := addr(t)
	return c.collective(fmt.Sprintf("ncclBroadcast %s from rank %d", t.Name, root), func(s uintptr) int32 {
		return ncclAPI.Broadcast(p, p, uintptr(t.Len()), ncclType(t), int32(root), c.comm, s)
	})
}

func (c *ncclComm) Reduce(t *gpu.Tensor, root int) error {
	p := addr(t)
	return c.collective(fmt.Sprintf("ncclReduce %s to rank %d", t.Name, root), func(s uintptr) int32 {
		return ncclAPI.Reduce(p, p, uintptr(t.Len()), ncclType(t), ncclSum, int32(root), c.comm, s)
	})
}

// ncclGroupedOnly makes ReduceScatter and AllGather take the grouped path
// even for equal ranges, so that a one-GPU test covers it.
var ncclGroupedOnly bool

// equalRuns returns the common length of the ranges, or -1 when they differ:
// NCCL's reduce-scatter and all-gather take equal counts only.
func equalRuns(b []int) int {
	if ncclGroupedOnly {
		return -1
	}
	n := b[1] - b[0]
	for r := 1; r+1 < len(b); r++ {
		if b[r+1]-b[r] != n {
			return -1
		}
	}
	return n
}

// ReduceScatter is ncclReduceScatter in place when every range has the same
// length; otherwise one ncclReduce per range to its rank, fused in one
// group (the same bytes per rank: each range travels once, to its owner).
func (c *ncclComm) ReduceScatter(t *gpu.Tensor, bounds []int) error {
	f := t.Reshape(t.Len())
	if n := equalRuns(bounds); n >= 0 {
		all, own := addr(f.Rows(bounds[0], bounds[len(bounds)-1])), addr(f.Rows(bounds[c.rank], bounds[c.rank+1]))
		return c.collective("ncclReduceScatter "+t.Name, func(s uintptr) int32 {
			return ncclAPI.ReduceScatter(all, own, uintptr(n), ncclType(t), ncclSum, c.comm, s)
		})
	}
	return c.grouped("grouped ncclReduce "+t.Name, f, bounds, func(p, n uintptr, root int32, s uintptr) int32 {
		return ncclAPI.Reduce(p, p, n, ncclType(t), ncclSum, root, c.comm, s)
	})
}

// AllGather is ncclAllGather in place for equal ranges, else one
// ncclBroadcast per range from its rank, fused in one group.
func (c *ncclComm) AllGather(t *gpu.Tensor, bounds []int) error {
	f := t.Reshape(t.Len())
	if n := equalRuns(bounds); n >= 0 {
		all, own := addr(f.Rows(bounds[0], bounds[len(bounds)-1])), addr(f.Rows(bounds[c.rank], bounds[c.rank+1]))
		return c.collective("ncclAllGather "+t.Name, func(s uintptr) int32 {
			return ncclAPI.AllGather(own, all, uintptr(n), ncclType(t), c.comm, s)
		})
	}
	return c.grouped("grouped ncclBroadcast "+t.Name, f, bounds, func(p, n uintptr, root int32, s uintptr) int32 {
		return ncclAPI.Broadcast(p, p, n, ncclType(t), root, c.comm, s)
	})
}

// grouped runs op on each rank's range of f (rooted at that rank) inside
// one ncclGroupStart/ncclGroupEnd, so NCCL runs them as one operation.
func (c *ncclComm) grouped(what string, f *gpu.Tensor, bounds []int, op func(p, n uintptr, root int32, s uintptr) int32) error {
	return c.collective(what, func(s uintptr) int32 {
		if r := ncclAPI.GroupStart(); r != ncclSuccess {
			return r
		}
		for r := range c.world {
			run := f.Rows(bounds[r], bounds[r+1])
			if res := op(addr(run), uintptr(run.Len()), int32(r), s); res != ncclSuccess {
				ncclAPI.GroupEnd() // leave the group; the first failure is the one reported
				return res
			}
		}
		return ncclAPI.GroupEnd()
	})
}

// Drain waits for the compute stream and the side stream, which it closes.
func (c *ncclComm) Drain() error {
	err := c.be.Sync()
	if c.side != nil {
		if serr := c.side.close(); err == nil {
			err = serr
		}
		c.side = nil
	}
	return err
}

// Close destroys the communicator (once; after an Abort it does nothing).
func (c *ncclComm) Close() error {
	var err error
	c.abort.Do(func() {
		err = c.be.onStream(func(uintptr) error { return ncclCheck(ncclAPI.CommDestroy(c.comm), 0, "ncclCommDestroy") })
	})
	return err
}

// Abort aborts the communicator once. It runs off the device thread: that
// thread may be the one stuck waiting for NCCL's kernels.
func (c *ncclComm) Abort() {
	c.abort.Do(func() {
		if c.comm != 0 {
			ncclAPI.CommAbort(c.comm)
		}
	})
}
