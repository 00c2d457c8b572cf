package cpu

import "github.com/compact-llm/compact/internal/gpu"

// StochasticRound on the CPU: the reference of csrc/rounding.cu. The float64
// backend rounds through float32 first, as a Full fp32 source would hold it.
func (c *Backend[T]) StochasticRound(dst, src *gpu.Tensor, rp gpu.RoundParams) {
	n := dst.Len()
	checkLen("StochasticRound src", src, n)
	checkRound("StochasticRound", rp, n)
	d, s := c.f(dst), c.f(src)
	// Work in whole Philox blocks of 4 arena elements so each block is drawn once.
	first := rp.Offset / 4
	blocks := int((rp.Offset+int64(n)+3)/4 - first)
	c.parallel(blocks, elemGrain/4, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			block := first + int64(b)
			r := gpu.RoundNoiseBlock(rp, block)
			for lane := range int64(4) {
				i := block*4 + lane - rp.Offset
				if i < 0 || i >= int64(n) {
					continue
				}
				d[i] = T(gpu.BF16Stochastic(float32(s[i]), r[lane]))
			}
		}
	})
}

// checkRound refuses a rounding of n elements outside the noise counter.
func checkRound(op string, rp gpu.RoundParams, n int) {
	if err := rp.CheckRange(n); err != nil {
		check(false, "%s: %v", op, err)
	}
}
