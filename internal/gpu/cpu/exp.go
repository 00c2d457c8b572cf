// Float32 exponential: the scalar statement of the algorithm that the vector
// kernels of cpu_vec_amd64.s run 8 lanes at a time (softmax, SiLU,
// cross-entropy), and their fallback off amd64. A float32 result needs only
// a degree-6 polynomial, not math.Exp's float64 work.
package cpu

import "math"

// exp32 returns e^x to about 1 ulp of float32. It is flushed to 0 below
// e^-87.3 (the smallest normal float32), where softmax weights vanish anyway,
// and is +Inf above e^88.7. Pure Go and branch-light, so every machine that
// runs the same binary gets the same bits.
func exp32(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > 88.72283:
		return float32(math.Inf(1))
	case x < -87.33654:
		return 0
	}
	// x = n ln2 + r, |r| <= ln2/2, with ln2 split in two so that n*ln2hi is
	// exact (Cody-Waite); e^r by the Cephes expf polynomial.
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	n := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - n*ln2hi - n*ln2lo
	z := r * r
	p := ((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r + 5.0000001201e-1
	y := p*z + r + 1
	// Scale by 2^n through the exponent bits; n in [-126, 128] here, and
	// 2^128 is split to stay finite until the final product.
	ni := int32(n)
	if ni > 127 {
		return y * 2 * math.Float32frombits(uint32(ni-1+127)<<23)
	}
	if ni < -126 {
		return y * 0.5 * math.Float32frombits(uint32(ni+1+127)<<23)
	}
	return y * math.Float32frombits(uint32(ni+127)<<23)
}
