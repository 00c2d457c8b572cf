//go:build linux && (amd64 || arm64)

package cuda

import "fmt"

// dtype is the element type of a GEMM operand.
type dtype int

const (
	dtBF16 dtype = iota + 1 // bfloat16
	dtF32                   // float32
)

func (t dtype) String() string {
	switch t {
	case dtBF16:
		return "bf16"
	case dtF32:
		return "f32"
	}
	return fmt.Sprintf("dtype(%d)", int(t))
}

// Size is the element size in bytes (0 for an unknown type).
func (t dtype) Size() int64 {
	switch t {
	case dtBF16:
		return 2
	case dtF32:
		return 4
	}
	return 0
}
