package gpu

import "fmt"

// GemmWorkspaceBytes is the size of the cuBLASLt workspace the CUDA backend
// allocates and hands over with SetGemmWorkspace.
const GemmWorkspaceBytes = 32 << 20

// CudaDType is the element type of a GEMM operand.
type CudaDType int

const (
	CudaBF16 CudaDType = iota + 1 // bfloat16
	CudaF32                       // float32
)

func (t CudaDType) String() string {
	switch t {
	case CudaBF16:
		return "bf16"
	case CudaF32:
		return "f32"
	}
	return fmt.Sprintf("CudaDType(%d)", int(t))
}

// Size is the element size in bytes (0 for an unknown type).
func (t CudaDType) Size() int64 {
	switch t {
	case CudaBF16:
		return 2
	case CudaF32:
		return 4
	}
	return 0
}
