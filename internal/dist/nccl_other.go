//go:build !(linux && (amd64 || arm64))

package dist

import (
	"errors"

	"github.com/compact-llm/compact/internal/gpu/cuda"
)

func joinNCCL(Env, *cuda.Backend) (Comm, error) {
	return nil, errors.New("nccl: multi-GPU training needs linux/amd64 or linux/arm64")
}
