//go:build linux && (amd64 || arm64)

// cuBLASLt binding: row-major GEMM (the CPU backend's Gemm contract) on top
// of column-major cuBLASLt, with matmul descriptors, layouts and the
// heuristic's algorithm cached per shape, and one caller-owned workspace.
package cuda

import (
	"fmt"
	"sync"
	"unsafe"
)

// library_types.h: enum cudaDataType_t.
const (
	cudaR32F  int32 = 0  // CUDA_R_32F
	cudaR16BF int32 = 14 // CUDA_R_16BF
)

// cudaDataType maps t to library_types.h's cudaDataType_t.
func (t dtype) cudaDataType() (int32, error) {
	switch t {
	case dtBF16:
		return cudaR16BF, nil
	case dtF32:
		return cudaR32F, nil
	}
	return 0, fmt.Errorf("cuda: no cudaDataType for %v", t)
}

// cublas_api.h: cublasComputeType_t and cublasOperation_t.
const (
	cublasCompute32F int32 = 68 // CUBLAS_COMPUTE_32F (plain fp32: no TF32 down-conversion)
	cublasOpN        int32 = 0  // CUBLAS_OP_N
	cublasOpT        int32 = 1  // CUBLAS_OP_T
)

// cublasLt.h: cublasLtMatmulDescAttributes_t (values are int32_t).
const (
	cublasLtMatmulDescTransA int32 = 3 // CUBLASLT_MATMUL_DESC_TRANSA, int32_t
	cublasLtMatmulDescTransB int32 = 4 // CUBLASLT_MATMUL_DESC_TRANSB, int32_t
	// CUBLASLT_MATMUL_DESC_POINTER_MODE (int32_t) and its value
	// CUBLASLT_POINTER_MODE_DEVICE (= CUBLAS_POINTER_MODE_DEVICE, cublas_api.h):
	// alpha and beta are read from device memory when the GEMM runs.
	cublasLtMatmulDescPointerMode int32 = 2
	cublasLtPointerModeDevice     int32 = 1
)

// cublasLt.h: cublasLtMatmulPreferenceAttributes_t.
const (
	cublasLtPrefMaxWorkspaceBytes int32 = 1 // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t
	cublasLtPrefMinAlignmentA     int32 = 5 // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, uint32_t
	cublasLtPrefMinAlignmentB     int32 = 6 // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, uint32_t
	cublasLtPrefMinAlignmentC     int32 = 7 // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, uint32_t
	cublasLtPrefMinAlignmentD     int32 = 8 // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, uint32_t
)

// cublas_api.h: cublasStatus_t.
var cublasStatusNames = map[int32]string{
	0:  "CUBLAS_STATUS_SUCCESS",
	1:  "CUBLAS_STATUS_NOT_INITIALIZED",
	3:  "CUBLAS_STATUS_ALLOC_FAILED",
	7:  "CUBLAS_STATUS_INVALID_VALUE",
	8:  "CUBLAS_STATUS_ARCH_MISMATCH",
	11: "CUBLAS_STATUS_MAPPING_ERROR",
	13: "CUBLAS_STATUS_EXECUTION_FAILED",
	14: "CUBLAS_STATUS_INTERNAL_ERROR",
	15: "CUBLAS_STATUS_NOT_SUPPORTED",
	16: "CUBLAS_STATUS_LICENSE_ERROR",
}

func cublasCheck(status int32, format string, args ...any) error {
	if status == 0 {
		return nil
	}
	name, ok := cublasStatusNames[status]
	if !ok {
		name = fmt.Sprintf("cublasStatus_t %d", status)
	}
	return fmt.Errorf("%s: %s", fmt.Sprintf(format, args...), name)
}

// cublasLtHeuristicResult mirrors cublasLtMatmulHeuristicResult_t
// (cublasLt.h): cublasLtMatmulAlgo_t algo (uint64_t data[8], 64 bytes) at 0,
// size_t workspaceSize at 64, cublasStatus_t state at 72, float wavesCount
// at 76, int reserved[4] at 80; 96 bytes, 8-byte aligned.
type cublasLtHeuristicResult struct {
	algo          [8]uint64
	workspaceSize uint64
	state         int32
	wavesCount    float32
	reserved      [4]int32
}

// Compile-time layout checks against the C struct.
var (
	_ [96]byte = [unsafe.Sizeof(cublasLtHeuristicResult{})]byte{}
	_ [64]byte = [unsafe.Offsetof(cublasLtHeuristicResult{}.workspaceSize)]byte{}
	_ [72]byte = [unsafe.Offsetof(cublasLtHeuristicResult{}.state)]byte{}
	_ [80]byte = [unsafe.Offsetof(cublasLtHeuristicResult{}.reserved)]byte{}
)

// blasLt holds the cuBLASLt entry points; prototypes from cublasLt.h.
// cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t and
// cublasLtMatmulPreference_t are pointers (uintptr); enums are int32.
var blasLt struct {
	Create                 func(h *uintptr) int32                                              // cublasLtCreate(cublasLtHandle_t*)
	Destroy                func(h uintptr) int32                                               // cublasLtDestroy(cublasLtHandle_t)
	GetVersion             func() uintptr                                                      // size_t cublasLtGetVersion(void)
	MatmulDescCreate       func(desc *uintptr, compute, scale int32) int32                     // (cublasLtMatmulDesc_t*, cublasComputeType_t, cudaDataType_t)
	MatmulDescDestroy      func(desc uintptr) int32                                            // (cublasLtMatmulDesc_t)
	MatmulDescSetAttribute func(desc uintptr, attr int32, buf unsafe.Pointer, n uintptr) int32 // (desc, cublasLtMatmulDescAttributes_t, const void*, size_t)
	MatrixLayoutCreate     func(l *uintptr, typ int32, rows, cols uint64, ld int64) int32      // (cublasLtMatrixLayout_t*, cudaDataType, uint64_t, uint64_t, int64_t)
	MatrixLayoutDestroy    func(l uintptr) int32                                               // (cublasLtMatrixLayout_t)
	PreferenceCreate       func(p *uintptr) int32                                              // cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t*)
	PreferenceDestroy      func(p uintptr) int32                                               // cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t)
	PreferenceSetAttribute func(p uintptr, attr int32, buf unsafe.Pointer, n uintptr) int32    // (pref, cublasLtMatmulPreferenceAttributes_t, const void*, size_t)
	MatmulAlgoGetHeuristic func(h, desc, a, b, c, d, pref uintptr, requested int32, results unsafe.Pointer, returned *int32) int32
	// cublasLtMatmulAlgoGetHeuristic(handle, operationDesc, Adesc, Bdesc, Cdesc, Ddesc,
	// preference, int requestedAlgoCount, cublasLtMatmulHeuristicResult_t[], int* returnAlgoCount)
	Matmul func(h, desc uintptr, alpha unsafe.Pointer, A, Adesc, B, Bdesc uintptr, beta unsafe.Pointer,
		C, Cdesc, D, Ddesc uintptr, algo unsafe.Pointer, workspace, workspaceSize, stream uintptr) int32
	// cublasLtMatmul(handle, computeDesc, const void* alpha, const void* A, Adesc,
	// const void* B, Bdesc, const void* beta, const void* C, Cdesc, void* D, Ddesc,
	// const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspaceSizeInBytes, cudaStream_t stream)
	// MatmulDevScalars is cublasLtMatmul with alpha and beta as device
	// addresses (a plan in CUBLASLT_POINTER_MODE_DEVICE).
	MatmulDevScalars func(h, desc, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc, D, Ddesc uintptr, algo unsafe.Pointer, workspace, workspaceSize, stream uintptr) int32
	MatmulAlgoCheck  func(h, desc, a, b, c, d uintptr, algo, result unsafe.Pointer) int32
	// cublasLtMatmulAlgoCheck(handle, operationDesc, Adesc, Bdesc, Cdesc, Ddesc,
	// const cublasLtMatmulAlgo_t* algo, cublasLtMatmulHeuristicResult_t* result)

	lib     *cudaLib
	version uintptr
}

var (
	blasLtOnce sync.Once
	blasLtErr  error
)

// loadCublasLt dlopens and binds libcublasLt once per process.
func loadCublasLt() error {
	blasLtOnce.Do(func() {
		lib, err := findLibrary("cuBLASLt", cublasLtLibNames)
		if err != nil {
			blasLtErr = err
			return
		}
		b := &cudaBinder{lib: lib}
		b.fn(&blasLt.Create, "cublasLtCreate")
		b.fn(&blasLt.Destroy, "cublasLtDestroy")
		b.fn(&blasLt.GetVersion, "cublasLtGetVersion")
		b.fn(&blasLt.MatmulDescCreate, "cublasLtMatmulDescCreate")
		b.fn(&blasLt.MatmulDescDestroy, "cublasLtMatmulDescDestroy")
		b.fn(&blasLt.MatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute")
		b.fn(&blasLt.MatrixLayoutCreate, "cublasLtMatrixLayoutCreate")
		b.fn(&blasLt.MatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy")
		b.fn(&blasLt.PreferenceCreate, "cublasLtMatmulPreferenceCreate")
		b.fn(&blasLt.PreferenceDestroy, "cublasLtMatmulPreferenceDestroy")
		b.fn(&blasLt.PreferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute")
		b.fn(&blasLt.MatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic")
		b.fn(&blasLt.Matmul, "cublasLtMatmul")
		b.fn(&blasLt.MatmulDevScalars, "cublasLtMatmul")
		b.fn(&blasLt.MatmulAlgoCheck, "cublasLtMatmulAlgoCheck")
		if b.err != nil {
			blasLtErr = b.err
			return
		}
		blasLt.lib = lib
		blasLt.version = blasLt.GetVersion()
	})
	return blasLtErr
}

// cublasLtState is a device's cuBLASLt handle, workspace and plan cache.
// Touched on the device thread only.
type cublasLtState struct {
	handle  uintptr
	ws      uintptr
	wsBytes int64
	plans   map[cudaGemmKey]*cudaGemmPlan
}

// cudaGemmKey identifies a cached plan.
type cudaGemmKey struct {
	M, N, K        int
	transA, transB bool
	ct, at, bt     dtype
	align          uint32 // alignment in bytes the pointers are known to have
	devScalars     bool   // alpha and beta in device memory (graph.go)
}

// cudaGemmPlan is what cublasLtMatmul needs besides the pointers.
type cudaGemmPlan struct {
	desc       uintptr // cublasLtMatmulDesc_t
	layX, layY uintptr // cuBLAS's A (our b) and B (our a)
	layC       uintptr // C and D
	algo       [8]uint64
	wsNeeded   uint64
}

func (d *device) blasInit() error {
	d.blas.plans = map[cudaGemmKey]*cudaGemmPlan{}
	return cublasCheck(blasLt.Create(&d.blas.handle), "cublasLtCreate")
}

func (d *device) blasDropPlans() {
	for k, p := range d.blas.plans {
		p.destroy()
		delete(d.blas.plans, k)
	}
}

func (d *device) blasRelease() error {
	d.blasDropPlans()
	if d.blas.handle == 0 {
		return nil
	}
	err := cublasCheck(blasLt.Destroy(d.blas.handle), "cublasLtDestroy")
	d.blas.handle = 0
	return err
}

func (p *cudaGemmPlan) destroy() {
	for _, l := range []uintptr{p.layX, p.layY, p.layC} {
		if l != 0 {
			blasLt.MatrixLayoutDestroy(l)
		}
	}
	if p.desc != 0 {
		blasLt.MatmulDescDestroy(p.desc)
	}
	*p = cudaGemmPlan{}
}

// SetGemmWorkspace hands the device the cuBLASLt workspace (allocated by the
// caller so that it is accounted; gemmWorkspaceBytes is the intended size).
// It must stay allocated until replaced or the device is closed. Cached plans
// are dropped, since they were chosen for the old workspace limit.
func (d *device) SetGemmWorkspace(ptr uintptr, bytes int64) error {
	if bytes < 0 || (ptr == 0 && bytes != 0) {
		return fmt.Errorf("cuda: SetGemmWorkspace(%#x, %d): invalid workspace", ptr, bytes)
	}
	return d.Do(func() error {
		if err := d.flushRecording(); err != nil {
			return err
		}
		// Work queued with the old workspace must finish before it is reused.
		if err := cuCheck(cu.StreamSynchronize(d.stream), "cuStreamSynchronize"); err != nil {
			return err
		}
		d.blasDropPlans()
		d.blas.ws, d.blas.wsBytes = ptr, bytes
		return nil
	})
}

// cudaGemmTypesOK accepts the supported (A, B -> C) combinations.
func cudaGemmTypesOK(ct, at, bt dtype) error {
	switch {
	case at == dtBF16 && bt == dtBF16 && (ct == dtBF16 || ct == dtF32):
		return nil
	case at == dtF32 && bt == dtF32 && ct == dtF32:
		return nil
	}
	return fmt.Errorf("cuda: Gemm: unsupported types A=%v B=%v C=%v "+
		"(supported: bf16,bf16->bf16; bf16,bf16->f32; f32,f32->f32)", at, bt, ct)
}

// Gemm computes, all row-major like the CPU backend's Gemm,
//
//	C (M,N) = alpha op(A) op(B) + beta C
//
// where op(A) is A^T when transA (A stored (K,M)) else A (stored (M,K)), and
// op(B) is B^T when transB (B stored (N,K)) else B (stored (K,N)). It is
// queued on the device's stream with fp32 compute (CUBLAS_COMPUTE_32F, no
// TF32) and fp32 alpha/beta. When beta is 0, C is not read.
//
// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, and a
// row-major matrix read column-major is its transpose, so cuBLASLt gets our
// B as its first operand and our A as its second, m=N, n=M, k=K, and no data
// is transposed.
func (d *device) Gemm(c, a, b uintptr, ct, at, bt dtype, M, N, K int, transA, transB bool, alpha, beta float32) error {
	if err := cudaGemmTypesOK(ct, at, bt); err != nil {
		return err
	}
	if M < 0 || N < 0 || K < 0 {
		return fmt.Errorf("cuda: Gemm: negative size M=%d N=%d K=%d", M, N, K)
	}
	if M == 0 || N == 0 {
		return nil
	}
	if K == 0 {
		return fmt.Errorf("cuda: Gemm: K=0 is not supported (M=%d N=%d)", M, N)
	}
	if a == 0 || b == 0 || c == 0 {
		return fmt.Errorf("cuda: Gemm: nil pointer (a=%#x b=%#x c=%#x)", a, b, c)
	}
	align := uint32(256)
	for align > 1 && (a|b|c)&uintptr(align-1) != 0 {
		align >>= 1
	}
	key := cudaGemmKey{M: M, N: N, K: K, transA: transA, transB: transB, ct: ct, at: at, bt: bt, align: align}
	return d.Do(func() error {
		p, err := d.gemmPlan(key) // outside any capture: plans are built on the host
		if err != nil {
			return err
		}
		ws, wsBytes := d.blas.ws, d.blas.wsBytes
		if ws == 0 {
			wsBytes = 0
		}
		g := &gemmCall{plan: p, key: key, a: a, b: b, c: c, scal: [2]float32{alpha, beta}, ws: ws, wsBytes: uintptr(wsBytes)}
		return d.submit(streamOp{kind: opGemm, gemm: g})
	})
}

// gemmCall is one cublasLtMatmul: its plan, operands and scalars (host
// pointer mode: read during the call, so a captured GEMM keeps them).
type gemmCall struct {
	plan        *cudaGemmPlan
	key         cudaGemmKey
	a, b, c     uintptr
	scal        [2]float32 // alpha, beta
	ws, wsBytes uintptr
}

func (d *device) matmulNow(g *gemmCall) error {
	p := g.plan
	r := blasLt.Matmul(d.blas.handle, p.desc, unsafe.Pointer(&g.scal[0]),
		g.b, p.layX, g.a, p.layY, unsafe.Pointer(&g.scal[1]),
		g.c, p.layC, g.c, p.layC,
		unsafe.Pointer(&p.algo), g.ws, g.wsBytes, d.stream)
	return cublasCheck(r, "cublasLtMatmul(%s)", g.key)
}

func (k cudaGemmKey) String() string {
	return fmt.Sprintf("M=%d N=%d K=%d transA=%v transB=%v A=%v B=%v C=%v align=%d devScalars=%v",
		k.M, k.N, k.K, k.transA, k.transB, k.at, k.bt, k.ct, k.align, k.devScalars)
}

// gemmPlan returns the cached plan for key, building it on a miss. Runs on
// the device thread.
func (d *device) gemmPlan(key cudaGemmKey) (*cudaGemmPlan, error) {
	if p, ok := d.blas.plans[key]; ok {
		return p, nil
	}
	p := &cudaGemmPlan{}
	if err := d.buildGemmPlan(key, p); err != nil {
		p.destroy()
		return nil, err
	}
	d.blas.plans[key] = p
	return p, nil
}

func (d *device) buildGemmPlan(k cudaGemmKey, p *cudaGemmPlan) error {
	xType, _ := k.bt.cudaDataType() // cuBLAS's A is our B
	yType, _ := k.at.cudaDataType() // cuBLAS's B is our A
	cType, _ := k.ct.cudaDataType()
	if err := cublasCheck(blasLt.MatmulDescCreate(&p.desc, cublasCompute32F, cudaR32F),
		"cublasLtMatmulDescCreate(CUBLAS_COMPUTE_32F, CUDA_R_32F)"); err != nil {
		return err
	}
	opX, opY := cublasOpN, cublasOpN
	// Our B: (K,N) row-major is column-major N x K (ld N), used as is;
	// transB: (N,K) row-major is column-major K x N (ld K), transposed.
	xRows, xCols, xLd := k.N, k.K, k.N
	if k.transB {
		opX, xRows, xCols, xLd = cublasOpT, k.K, k.N, k.K
	}
	// Our A: (M,K) row-major is column-major K x M (ld K), used as is;
	// transA: (K,M) row-major is column-major M x K (ld M), transposed.
	yRows, yCols, yLd := k.K, k.M, k.K
	if k.transA {
		opY, yRows, yCols, yLd = cublasOpT, k.M, k.K, k.M
	}
	if err := cublasCheck(blasLt.MatmulDescSetAttribute(p.desc, cublasLtMatmulDescTransA, unsafe.Pointer(&opX), 4),
		"cublasLtMatmulDescSetAttribute(TRANSA)"); err != nil {
		return err
	}
	if err := cublasCheck(blasLt.MatmulDescSetAttribute(p.desc, cublasLtMatmulDescTransB, unsafe.Pointer(&opY), 4),
		"cublasLtMatmulDescSetAttribute(TRANSB)"); err != nil {
		return err
	}
	if k.devScalars {
		mode := cublasLtPointerModeDevice
		if err := cublasCheck(blasLt.MatmulDescSetAttribute(p.desc, cublasLtMatmulDescPointerMode, unsafe.Pointer(&mode), 4),
			"cublasLtMatmulDescSetAttribute(POINTER_MODE DEVICE)"); err != nil {
			return err
		}
	}
	if err := cublasCheck(blasLt.MatrixLayoutCreate(&p.layX, xType, uint64(xRows), uint64(xCols), int64(xLd)),
		"cublasLtMatrixLayoutCreate(B %dx%d ld %d)", xRows, xCols, xLd); err != nil {
		return err
	}
	if err := cublasCheck(blasLt.MatrixLayoutCreate(&p.layY, yType, uint64(yRows), uint64(yCols), int64(yLd)),
		"cublasLtMatrixLayoutCreate(A %dx%d ld %d)", yRows, yCols, yLd); err != nil {
		return err
	}
	if err := cublasCheck(blasLt.MatrixLayoutCreate(&p.layC, cType, uint64(k.N), uint64(k.M), int64(k.N)),
		"cublasLtMatrixLayoutCreate(C %dx%d ld %d)", k.N, k.M, k.N); err != nil {
		return err
	}

	var pref uintptr
	if err := cublasCheck(blasLt.PreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate"); err != nil {
		return err
	}
	defer blasLt.PreferenceDestroy(pref)
	wsMax := uint64(0)
	if d.blas.ws != 0 {
		wsMax = uint64(d.blas.wsBytes)
	}
	if err := cublasCheck(blasLt.PreferenceSetAttribute(pref, cublasLtPrefMaxWorkspaceBytes, unsafe.Pointer(&wsMax), 8),
		"cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)"); err != nil {
		return err
	}
	align := k.align
	for _, attr := range []int32{cublasLtPrefMinAlignmentA, cublasLtPrefMinAlignmentB, cublasLtPrefMinAlignmentC, cublasLtPrefMinAlignmentD} {
		if err := cublasCheck(blasLt.PreferenceSetAttribute(pref, attr, unsafe.Pointer(&align), 4),
			"cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT %d)", attr); err != nil {
			return err
		}
	}
	if k.devScalars && d.sameAlgo(k, p, wsMax) {
		return nil
	}
	var results [4]cublasLtHeuristicResult
	var n int32
	if err := cublasCheck(blasLt.MatmulAlgoGetHeuristic(d.blas.handle, p.desc, p.layX, p.layY, p.layC, p.layC, pref,
		int32(len(results)), unsafe.Pointer(&results[0]), &n), "cublasLtMatmulAlgoGetHeuristic(%s)", k); err != nil {
		return err
	}
	for i := 0; i < int(n) && i < len(results); i++ {
		if results[i].state == 0 && results[i].workspaceSize <= wsMax {
			p.algo = results[i].algo
			p.wsNeeded = results[i].workspaceSize
			return nil
		}
	}
	return fmt.Errorf("cublasLtMatmulAlgoGetHeuristic(%s): no usable algorithm (%d returned, workspace %d bytes)", k, n, wsMax)
}

// sameAlgo gives the device-scalar plan p the algorithm of the host-scalar
// plan of the same GEMM when cuBLASLt accepts it for p, so that a GEMM
// replayed in a graph computes what the eager one did, bit for bit.
func (d *device) sameAlgo(k cudaGemmKey, p *cudaGemmPlan, wsMax uint64) bool {
	hk := k
	hk.devScalars = false
	host, err := d.gemmPlan(hk)
	if err != nil {
		return false
	}
	var res cublasLtHeuristicResult
	if blasLt.MatmulAlgoCheck(d.blas.handle, p.desc, p.layX, p.layY, p.layC, p.layC, unsafe.Pointer(&host.algo), unsafe.Pointer(&res)) != 0 ||
		res.state != 0 || res.workspaceSize > wsMax {
		return false
	}
	p.algo, p.wsNeeded = host.algo, res.workspaceSize
	return true
}

// matmulDevScalars queues g with plan p (a device-scalar plan of g's key)
// reading alpha and beta from device addresses.
func (d *device) matmulDevScalars(g *gemmCall, p *cudaGemmPlan, alpha, beta uintptr) error {
	r := blasLt.MatmulDevScalars(d.blas.handle, p.desc, alpha,
		g.b, p.layX, g.a, p.layY, beta,
		g.c, p.layC, g.c, p.layC,
		unsafe.Pointer(&p.algo), g.ws, g.wsBytes, d.stream)
	return cublasCheck(r, "cublasLtMatmul(%s, device scalars)", g.key)
}
