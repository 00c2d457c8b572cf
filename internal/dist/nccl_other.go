//go:build !(linux && (amd64 || arm64))

package dist

import (
	"errors"

	"github.com/compact-llm/compact/internal/gpu"
)

func joinNCCL(Env, *gpu.CUDA) (Comm, error) {
	return nil, errors.New("nccl: multi-GPU training needs linux/amd64 or linux/arm64")
}
