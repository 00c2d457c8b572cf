//go:build linux && (amd64 || arm64)

package cuda

import "github.com/compact-llm/compact/internal/gpu"

// csrc/loss.cu: fused softmax cross-entropy, one 512-thread block per row.
type lossKernels struct{ crossEntropy crossEntropyKernel }

func (k *lossKernels) bindings() []binding {
	return []binding{{"cross_entropy", &k.crossEntropy.kernel, 512}}
}

type crossEntropyKernel struct{ kernel }

func (k crossEntropyKernel) launch(losses devPtr[float32], logits devPtr[bf16], targets devPtr[int32], n, V int32, grad bool, gradScale float32) {
	k.run(blocks(int(n)), 0, losses.arg(), logits.arg(), targets.arg(), argI32(n), argI32(V), argBool(grad), argF32(gradScale))
}

func (c *Backend) CrossEntropy(losses, logits, targets *gpu.Tensor, grad bool, gradScale float32) {
	n, V := rowsOf(logits)
	c.k.loss.crossEntropy.launch(full(losses), low(logits), ids(targets), i32(n), i32(V), grad, gradScale)
}
