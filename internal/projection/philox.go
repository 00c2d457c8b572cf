// Package projection generates CompAct's random projections. P is never
// stored: it is regenerated from (seed, stream, epoch) with the counter-based
// Philox4x32-10 generator, so the CPU backend and the CUDA kernel
// (csrc/projection.cu) produce the same matrix to float rounding.
//
// Specification (the CUDA kernel implements the same):
//
//	key      = (uint32(seed), uint32(seed >> 32))
//	element  e = i*r + j of P (n x r, row-major); block = e / 4, lane = e % 4
//	counter  = (block, stream, epoch, 0x436F6D70)
//	x[0..3]  = Philox4x32-10(counter, key)
//	gaussian: Box-Muller on the pairs (x0,x1) and (x2,x3):
//	          u1 = (x_even + 1) * 2^-32 in (0,1], u2 = x_odd * 2^-32 in [0,1),
//	          rad = sqrt(-2 ln u1); lane even: rad*cos(2 pi u2), odd: rad*sin(2 pi u2)
//	          P[e] = g / sqrt(r)                       (so P ~ N(0, 1/r))
//	rademacher: P[e] = (x_lane & 1 ? -1 : +1) / sqrt(r)
package projection

import "math/bits"

const (
	philoxM0 = 0xD2511F53
	philoxM1 = 0xCD9E8D57
	philoxW0 = 0x9E3779B9
	philoxW1 = 0xBB67AE85

	// CounterTag fills the last counter word so P's streams never meet other
	// Philox users that count from zero.
	CounterTag = 0x436F6D70
)

// Philox4x32 runs the ten rounds of Philox4x32-10 on counter c with key k.
func Philox4x32(c [4]uint32, k [2]uint32) [4]uint32 {
	for round := 0; round < 10; round++ {
		hi0, lo0 := bits.Mul32(philoxM0, c[0])
		hi1, lo1 := bits.Mul32(philoxM1, c[2])
		c = [4]uint32{hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0}
		k[0] += philoxW0
		k[1] += philoxW1
	}
	return c
}
