//go:build linux && (amd64 || arm64)

package optim

import (
	"testing"

	"github.com/compact-llm/compact/internal/gpu/cuda"
)

// The moments' round trip through a checkpoint on the GPU, whose uploads
// into the bf16 gradient arena of train.grad_accum_state bf16 round.
func TestCUDALoadMomentsKeepsEveryBit(t *testing.T) {
	g, err := cuda.New(0)
	if err != nil {
		t.Skipf("no usable CUDA device: %v", err)
	}
	defer g.Close()
	momentsRoundTrip(t, g)
}
