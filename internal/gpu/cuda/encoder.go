//go:build linux && (amd64 || arm64)

package cuda

import "github.com/compact-llm/compact/internal/gpu"

// csrc/encoder.cu: the token embedding and its backward.
type encoderKernels struct {
	fwd embeddingFwd
	bwd embeddingBwd
}

func (k *encoderKernels) bindings() []binding {
	return []binding{
		{"embedding_fwd", &k.fwd.kernel, 256},
		{"embedding_bwd", &k.bwd.kernel, 256},
	}
}

type embeddingFwd struct{ kernel }

func (k embeddingFwd) launch(out, wte devPtr[bf16], tokens devPtr[int32], N, C int32) {
	k.run(k.elementwise(int64(N)*int64(C)), 0, out.arg(), wte.arg(), tokens.arg(), argI32(N), argI32(C))
}

// embeddingBwd runs one block per token row.
type embeddingBwd struct{ kernel }

func (k embeddingBwd) launch(dwte devPtr[float32], dout devPtr[bf16], tokens devPtr[int32], N, C int32) {
	k.run(blocks(int(N)), 0, dwte.arg(), dout.arg(), tokens.arg(), argI32(N), argI32(C))
}

func (c *Backend) Embedding(out, wte, tokens *gpu.Tensor) {
	N, C := rowsOf(out)
	c.k.encoder.fwd.launch(low(out), low(wte), ids(tokens), i32(N), i32(C))
}

func (c *Backend) EmbeddingBackward(dwte, dout, tokens *gpu.Tensor) {
	N, C := rowsOf(dout)
	c.k.encoder.bwd.launch(full(dwte), low(dout), ids(tokens), i32(N), i32(C))
}
