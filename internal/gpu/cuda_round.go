//go:build linux && (amd64 || arm64)

package gpu

// StochasticRound launches csrc/rounding.cu: dst bf16, src fp32.
func (c *CUDA) StochasticRound(dst, src *Tensor, rp RoundParams) {
	n := int64(dst.Len())
	check(dst.Prec == Low && src.Prec == Full, "StochasticRound: %s must be Low and %s Full", dst, src)
	checkLen("StochasticRound src", src, int(n))
	check(rp.Offset >= 0 && rp.Offset+n <= MaxRoundElements,
		"StochasticRound: elements [%d, %d) outside the noise counter's range", rp.Offset, rp.Offset+n)
	if n == 0 {
		return
	}
	blocks := (rp.Offset+n+3)/4 - rp.Offset/4
	g := min((blocks+255)/256, 132*32)
	c.launch("stochastic_round_bf16", [3]uint32{uint32(g), 1, 1}, block256, 0, dst.ptr(), src.ptr(), n,
		uint32(rp.Seed), uint32(rp.Seed>>32), rp.Stream, rp.Step, rp.Offset)
}
