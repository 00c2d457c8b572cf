//go:build linux && (amd64 || arm64)

package cuda

import "github.com/compact-llm/compact/internal/gpu"

// csrc/reduce.cu: the global norm's sum of squares (sumSquaresParts
// partial sums per tensor, then one finishing block) and the clip scale.
type reduceKernels struct {
	sumSquaresF32  sumSquaresKernel[float32] // sum_squares
	sumSquaresBF16 sumSquaresKernel[bf16]
	finish         sumSquaresFinish
	clipScale      clipScaleKernel
}

func (k *reduceKernels) bindings() []binding {
	return []binding{
		{"sum_squares", &k.sumSquaresF32.kernel, 256},
		{"sum_squares_bf16", &k.sumSquaresBF16.kernel, 256},
		{"sum_squares_finish", &k.finish.kernel, 256},
		{"clip_scale", &k.clipScale.kernel, 1},
	}
}

// sumSquaresKernel writes one partial sum per block.
type sumSquaresKernel[E elem] struct{ kernel }

func (k sumSquaresKernel[E]) launch(partial devPtr[float32], x devPtr[E], n int64) {
	k.run(blocks(sumSquaresParts), 0, partial.arg(), x.arg(), argI64(n))
}

type sumSquaresFinish struct{ kernel }

func (k sumSquaresFinish) launch(acc, partial devPtr[float32], parts int32) {
	k.run(blocks(1), 0, acc.arg(), partial.arg(), argI32(parts))
}

type clipScaleKernel struct{ kernel }

func (k clipScaleKernel) launch(clip, sumSq devPtr[float32], maxNorm float32) {
	k.run(blocks(1), 0, clip.arg(), sumSq.arg(), argF32(maxNorm))
}

// SumSquares gives each tensor its own slice of partial sums and finishes
// once: one launch per tensor plus one, in a fixed order.
func (c *Backend) SumSquares(acc *gpu.Tensor, ts ...*gpu.Tensor) {
	partial := c.scratchFloats(int64(sumSquaresParts * len(ts)))
	for i, t := range ts {
		slot := partial.plus(i * sumSquaresParts)
		if t.Prec == gpu.Low {
			c.k.reduce.sumSquaresBF16.launch(slot, low(t), int64(t.Len()))
		} else {
			c.k.reduce.sumSquaresF32.launch(slot, full(t), int64(t.Len()))
		}
	}
	c.k.reduce.finish.launch(full(acc), partial, i32(sumSquaresParts*len(ts)))
}

func (c *Backend) ClipScale(clip, sumSq *gpu.Tensor, maxNorm float32) {
	c.k.reduce.clipScale.launch(full(clip), full(sumSq), maxNorm)
}
