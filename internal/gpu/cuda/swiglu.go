//go:build linux && (amd64 || arm64)

package cuda

import "github.com/compact-llm/compact/internal/gpu"

// csrc/swiglu.cu: the MLP's gated activation and its backward.
type swigluKernels struct {
	fwd swigluFwd
	bwd swigluBwd
}

func (k *swigluKernels) bindings() []binding {
	return []binding{
		{"swiglu_fwd", &k.fwd.kernel, 256},
		{"swiglu_bwd", &k.bwd.kernel, 256},
	}
}

type swigluFwd struct{ kernel }

func (k swigluFwd) launch(out, gate, up devPtr[bf16], n int64) {
	k.run(k.elementwise(n), 0, out.arg(), gate.arg(), up.arg(), argI64(n))
}

type swigluBwd struct{ kernel }

func (k swigluBwd) launch(dgate, dup, dout, gate, up devPtr[bf16], n int64) {
	k.run(k.elementwise(n), 0, dgate.arg(), dup.arg(), dout.arg(), gate.arg(), up.arg(), argI64(n))
}

func (c *Backend) SwiGLU(out, gate, up *gpu.Tensor) {
	c.k.swiglu.fwd.launch(low(out), low(gate), low(up), int64(out.Len()))
}

func (c *Backend) SwiGLUBackward(dgate, dup, dout, gate, up *gpu.Tensor) {
	c.k.swiglu.bwd.launch(low(dgate), low(dup), low(dout), low(gate), low(up), int64(dout.Len()))
}
