//go:build linux && (amd64 || arm64)

package cuda

import (
	"slices"
	"testing"
	"unsafe"
)

// testPlan stands for a cached GEMM plan: the same pointer every step.
var testPlan = &cudaGemmPlan{}

// A step made of one of each stream operation; vary changes one thing.
func recordStep(vary func(ops []streamOp)) *recording {
	f, g := &function{h: 0x100, name: "a"}, &function{h: 0x200, name: "b"}
	plan := testPlan
	tokens := []int32{1, 2, 3, 4, 5}
	ops := []streamOp{
		{kind: opHtoD, dst: 0x1000, n: int64(len(tokens) * 4), host: unsafe.Pointer(&tokens[0])},
		{kind: opLaunch, fn: f, grid: dim3{4, 1, 1}, block: dim3{256, 1, 1}, args: []kernelArg{argPtr(0x1000), argF32(0.5)}},
		{kind: opGemm, gemm: &gemmCall{plan: plan, key: cudaGemmKey{M: 8, N: 8, K: 8}, a: 0x2000, b: 0x3000, c: 0x4000, scal: [2]float32{-0.01, 0}}},
		{kind: opMemset32, dst: 0x5000, n: 16, val: 7},
		{kind: opDtoD, dst: 0x6000, src: 0x7000, n: 64},
		{kind: opLaunch, fn: g, grid: dim3{1, 1, 1}, block: dim3{128, 1, 1}, smem: 64, args: []kernelArg{argI32(3)}},
	}
	vary(ops)
	r := &recording{}
	d := &device{rec: r}
	for _, op := range ops {
		if err := d.submit(op); err != nil {
			panic(err)
		}
	}
	return r
}

// The key holds what a graph bakes in and nothing it can change per
// replay: kernel arguments, uploaded bytes and GEMM alphas leave it equal,
// anything else (a grid, a kernel, a GEMM's beta, an upload's size or
// destination, a memset value) changes it.
func TestRecordingKey(t *testing.T) {
	base := recordStep(func([]streamOp) {})
	same := map[string]func([]streamOp){
		"kernel argument": func(o []streamOp) { o[1].args = []kernelArg{argPtr(0x1000), argF32(0.25)} },
		"upload bytes":    func(o []streamOp) { x := []int32{9, 9, 9, 9, 9}; o[0].host = unsafe.Pointer(&x[0]) },
		"GEMM alpha":      func(o []streamOp) { g := *o[2].gemm; g.scal[0] = -0.02; o[2].gemm = &g },
	}
	for what, vary := range same {
		r := recordStep(vary)
		if !slices.Equal(r.key, base.key) {
			t.Errorf("changing the %s changed the key", what)
		}
	}
	differ := map[string]func([]streamOp){
		"grid":          func(o []streamOp) { o[1].grid[0] = 5 },
		"kernel":        func(o []streamOp) { o[5].fn = o[1].fn },
		"shared memory": func(o []streamOp) { o[5].smem = 128 },
		"argument count": func(o []streamOp) {
			o[5].args = append(o[5].args, argI32(1))
		},
		"GEMM beta":        func(o []streamOp) { g := *o[2].gemm; g.scal[1] = 1; o[2].gemm = &g },
		"GEMM shape":       func(o []streamOp) { g := *o[2].gemm; g.key.K = 16; o[2].gemm = &g },
		"upload size":      func(o []streamOp) { o[0].n -= 4 },
		"upload target":    func(o []streamOp) { o[0].dst += 256 },
		"memset value":     func(o []streamOp) { o[3].val = 8 },
		"copy source":      func(o []streamOp) { o[4].src += 4 },
		"operation order":  func(o []streamOp) { o[3], o[4] = o[4], o[3] },
		"a dropped launch": func(o []streamOp) { o[5] = streamOp{kind: opMemset8, dst: 0x8000, n: 1} },
	}
	for what, vary := range differ {
		r := recordStep(vary)
		if slices.Equal(r.key, base.key) {
			t.Errorf("changing the %s left the key equal", what)
		}
	}
}

// Recording copies what the caller may change after the call returns: the
// kernel arguments and the uploaded bytes.
func TestRecordingCopiesCallerBuffers(t *testing.T) {
	tokens := []int32{1, 2, 3}
	args := []kernelArg{argI32(5)}
	r := &recording{}
	d := &device{rec: r}
	f := &function{h: 1, name: "k"}
	if err := d.submit(streamOp{kind: opHtoD, dst: 0x100, n: 12, host: unsafe.Pointer(&tokens[0])}); err != nil {
		t.Fatal(err)
	}
	if err := d.submit(streamOp{kind: opLaunch, fn: f, grid: dim3{1, 1, 1}, block: dim3{1, 1, 1}, args: args}); err != nil {
		t.Fatal(err)
	}
	tokens[0], args[0] = 99, argI32(6)
	if got := r.ops[0].payload; len(got) != 12 || got[0] != 1 {
		t.Fatalf("recorded upload %v: want the bytes at the time of the call", got)
	}
	if r.ops[1].args[0] != argI32(5) {
		t.Fatalf("recorded argument %d: want 5", r.ops[1].args[0])
	}
	if len(r.alphas) != 0 || len(r.ops) != 2 {
		t.Fatalf("recording holds %d ops, %d alphas", len(r.ops), len(r.alphas))
	}
}

// Uploads sit on 256-byte boundaries in the scratch, device scalars after
// them, 8 bytes each; baked GEMMs take no room.
func TestUploadLayout(t *testing.T) {
	r := recordStep(func(o []streamOp) {})
	extra := streamOp{kind: opHtoD, dst: 0x9000, n: 300}
	ops := append(slices.Clone(r.ops), extra)
	uploads, scalars, total := uploadLayout(ops, []bool{true})
	if !slices.Equal(uploads, []int64{0, 256}) || !slices.Equal(scalars, []int64{768}) || total != 776 {
		t.Fatalf("layout uploads %v scalars %v total %d: want [0 256] [768] 776", uploads, scalars, total)
	}
	_, scalars, total = uploadLayout(ops, []bool{false})
	if !slices.Equal(scalars, []int64{-1}) || total != 768 {
		t.Fatalf("baked GEMM: scalars %v total %d: want [-1] 768", scalars, total)
	}
}

// A graph replays a step of its structure unless an alpha it baked in
// changed; alphas it reads from its scratch may change.
func TestGraphMatchesBakedAlphas(t *testing.T) {
	r := recordStep(func([]streamOp) {})
	alpha := func(a float32) *recording {
		return recordStep(func(o []streamOp) { g := *o[2].gemm; g.scal[0] = a; o[2].gemm = &g })
	}
	baked := &stepGraph{key: r.key, alphas: r.alphas, scalars: []int64{-1}}
	scratch := &stepGraph{key: r.key, alphas: r.alphas, scalars: []int64{0}}
	if !baked.matches(r) || !scratch.matches(r) {
		t.Fatal("a graph does not match the step it was captured from")
	}
	if baked.matches(alpha(-0.02)) {
		t.Error("a graph with alpha baked in matches a step with another alpha")
	}
	if !scratch.matches(alpha(-0.02)) {
		t.Error("a graph reading alpha from its scratch does not match a step with another alpha")
	}
	if scratch.matches(recordStep(func(o []streamOp) { o[1].grid[0] = 8 })) {
		t.Error("a graph matches a step of another structure")
	}
}
