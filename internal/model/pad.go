package model

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
)

// The MLP's intermediate width F is padded inside the engine to a multiple
// of Options.PadIntermediate (8 on backends with bf16 weights), so that every
// GEMM touching an (., F) operand has 16-byte aligned rows: llama-1b's
// F = 5461 otherwise drops cuBLASLt to slow kernels. The padding is a no-op
// for the model's function: gate and up get zero extra rows, so their extra
// outputs are 0 and silu(0)*0 = 0; down's extra columns multiply those
// zeros. Gradients of the padding are zero (the extra columns of a compressed
// down_proj may drift, but only ever multiply zeros), and every tensor
// leaves the engine (checkpoints, HF files) at its logical shape.

// ffn is the engine's (padded) intermediate width.
func (m *Model) ffn() int {
	pad := max(1, m.Opts.PadIntermediate)
	return (m.Cfg.Intermediate + pad - 1) / pad * pad
}

// HFShape is the logical (HuggingFace) shape of p's weight.
func (p *Param) HFShape() []int { return p.hfShape }

// logical maps the shape of one of p's tensors (weight, gradient or moment)
// to the shape it has outside the engine: a dimension equal to the padded
// weight's is cut back to the logical one, and the padded rank of an
// r-space tensor back to the rank (rankpad.go).
func (p *Param) logical(shape []int) []int {
	out := append([]int(nil), shape...)
	rs := p.rSpace(shape)
	for i := range out {
		if i < len(p.shape) && out[i] == p.shape[i] {
			out[i] = p.hfShape[i]
		}
	}
	if rs {
		out[1] = p.Group.Rank
	}
	return out
}

// ReadParam downloads t, one of p's tensors, at its logical shape.
func (m *Model) ReadParam(p *Param, t *gpu.Tensor) ([]float32, []int, error) {
	data, err := m.be.Download(t)
	if err != nil {
		return nil, nil, fmt.Errorf("download %s: %w", t.Name, err)
	}
	shape := p.logical(t.Shape)
	return crop(data, t.Shape, shape), shape, nil
}

// HostParam is ReadParam for values of one of p's tensors already on the
// host, in that tensor's (padded) shape.
func (p *Param) HostParam(data []float32, shape []int) ([]float32, []int) {
	logical := p.logical(shape)
	return crop(data, shape, logical), logical
}

// WriteParam uploads data of p's logical shape into t, zero in the padding.
func (m *Model) WriteParam(p *Param, t *gpu.Tensor, data []float32) error {
	vals, err := p.HostPad(data, t.Shape)
	if err != nil {
		return err
	}
	return m.be.Upload(t, vals)
}

// HostPad is WriteParam's layout on the host: data of p's logical shape
// placed in shape, the engine shape of one of p's tensors, zero in the
// padding. Values that must keep every bit (fp32 moments) take this way
// rather than a round trip through a tensor that may be bf16.
func (p *Param) HostPad(data []float32, shape []int) ([]float32, error) {
	logical := p.logical(shape)
	if n := numel(logical); len(data) != n {
		return nil, fmt.Errorf("%s: %d values for shape %v", p.Name, len(data), logical)
	}
	return padOut(data, logical, shape), nil
}

// LogicalShape is the shape t, one of p's tensors, has outside the engine.
func (p *Param) LogicalShape(t *gpu.Tensor) []int { return p.logical(t.Shape) }

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// crop copies the leading (rows, cols) block of a 2-D (or 1-D) array.
func crop[T float32 | float64](data []T, from, to []int) []T {
	if sameShape(from, to) {
		return data
	}
	out := make([]T, 0, numel(to))
	for r := 0; r < to[0]; r++ {
		out = append(out, data[r*from[1]:r*from[1]+to[1]]...)
	}
	return out
}

// padOut places a (rows, cols) array in the leading block of a larger zero
// one.
func padOut[T float32 | float64](data []T, from, to []int) []T {
	if sameShape(from, to) {
		return data
	}
	out := make([]T, numel(to))
	for r := 0; r < from[0]; r++ {
		copy(out[r*to[1]:], data[r*from[1]:(r+1)*from[1]])
	}
	return out
}
