package gpu

import "fmt"

// MapOp is an in-place elementwise op of the Backend's Map family:
// x[i] = f(x[i], alpha) for every element of a Low or Full tensor, in fp32
// arithmetic (float64 on the float64 CPU backend), a Low result rounded to
// the nearest bf16 on the CUDA backend. Every op of the family shares one
// method (Backend.Map) and one typed CUDA launcher, so an op is its constant
// and name here, its body in the CPU backend (cpu/mapop.go) and its kernels
// in csrc/elementwise.cu, nothing else (docs/ARCHITECTURE.md).
type MapOp int

const (
	// MapScale: x = alpha * x.
	MapScale MapOp = iota

	// NumMapOps counts the ops above: a new op goes before it.
	NumMapOps
)

// mapOpNames name the ops; op's kernels are <name>_bf16 and <name>_f32.
var mapOpNames = [NumMapOps]string{
	MapScale: "scale",
}

// MapOps lists every op, in order.
func MapOps() []MapOp {
	ops := make([]MapOp, NumMapOps)
	for i := range ops {
		ops[i] = MapOp(i)
	}
	return ops
}

// Valid reports whether op is one of MapOps.
func (op MapOp) Valid() bool { return op >= 0 && op < NumMapOps }

// String is op's name, the stem of its kernels' names.
func (op MapOp) String() string {
	if !op.Valid() {
		return fmt.Sprintf("MapOp(%d)", int(op))
	}
	return mapOpNames[op]
}
