package gpu

// 8-bit Adam moments (train.optimizer_state int8), the one rule shared by
// the CPU backend and csrc/optimizer.cu, as rounding.go is for bf16. A
// moment tensor is cut into blocks of QuantBlock consecutive elements; each
// block keeps one fp32 scale s, the largest magnitude in it, and one byte
// per element: an 8-bit float code of y = |x| / s in [0, 1] (block-wise
// quantization with a non-linear code, as bitsandbytes' 8-bit Adam; its
// dynamic-tree code is replaced by a small float whose bits are computed,
// not searched, so both backends agree to the bit without a table):
//
//	first moment m (signed):  bit 7 the sign, bits 0..6 a magnitude u with
//	                          4 exponent and 3 mantissa bits, emax = 15
//	second moment v (>= 0):   bits 0..7 a magnitude u with 5 exponent and
//	                          3 mantissa bits, emax = 31
//	value(u) = 0 for u = 0, else (1 + (u & 7)/8) * 2^((u >> 3) - emax)
//	decode:  x = s * value(u)  (one fp32 multiply; negated when signed)
//	encode:  y = |x| / s (one correctly rounded fp32 division); u is y's
//	         fp32 bits rounded to 3 mantissa bits, ties to even
//	         ((b + 0x7FFFF + ((b >> 20) & 1)) >> 20, exponent rebased);
//	         y = 0 gives 0; y below 2^-emax gives 0 for m and the smallest
//	         code 1 for v (a second moment that is not zero never decodes
//	         to zero, which would blow up m / sqrt(v) at the next step);
//	         s = 0 (an all-zero block) gives 0 everywhere.
//
// The scale is the maximum of the elements' fp32 bits with the sign
// cleared, taken as integers (so a NaN propagates instead of being skipped
// as fmaxf would). Everything is one IEEE operation or integer arithmetic,
// so the CPU and CUDA encode the same fp32 values to the same bytes.
//
// Precision: for |x| >= s 2^-emax a code is within a relative 2^-4 of x
// (half a unit of a 3-bit mantissa), 2^-5 on average; below that m is
// within s 2^-15 of x and v within s 2^-30. The exponent ranges cover
// m down to 3e-5 and v down to 5e-10 of their block's largest, v being the
// square of a gradient scale (its range is squared). A block of 128 is the
// gradient layout's alignment (model.arenaAlign): every parameter starts on
// a block, so a block never holds two parameters and a ZeRO-1 share or a
// fused update of one parameter covers whole blocks. Storage: 1 + 4/128
// bytes per element and moment (bf16: 2, fp32: 4).
//
// A block that is decoded and encoded again with no update in between gets
// its own codes and scale back: its largest element decodes to exactly s
// (value 1), so the scale is unchanged, and every other element is within
// 2^-23 (two fp32 roundings) of its code's value, far from any rounding
// boundary. Checkpoints rely on it (internal/optim, checkpoint.go).

import "math"

// QuantBlock is the number of elements sharing one scale.
const QuantBlock = 128

// Exponent ranges of the two codes.
const (
	quantEmaxM = 15
	quantEmaxV = 31
)

// codeValue is value(u) of a magnitude code under emax.
func codeValue(u, emax uint32) float32 {
	if u == 0 {
		return 0
	}
	return math.Float32frombits((u>>3+127-emax)<<23 | (u&7)<<20)
}

// encodeMagnitude is the magnitude code of y = |x|/s; keep maps values
// below the smallest code to it rather than to zero.
func encodeMagnitude(y float32, emax uint32, keep bool) uint32 {
	b := math.Float32bits(y)
	switch {
	case b == 0:
		return 0
	case b > 0x3f800000: // above 1 or NaN: only under a non-finite scale, which decodes non-finite anyway
		return emax << 3
	}
	r := (b + 0x7ffff + (b>>20)&1) >> 20 // biased exponent << 3 | 3 mantissa bits
	lo := (127 - emax) << 3
	switch {
	case r == lo: // 2^-emax, whose code would be zero's: the nearest other is 1
		return 1
	case r < lo:
		if keep {
			return 1
		}
		return 0
	}
	return r - lo
}

// Quantize8 encodes one block of values (at most QuantBlock) into codes and
// returns its scale; signed is the first moment's code, else the second's.
func Quantize8(vals []float32, codes []uint8, signed bool) float32 {
	var top uint32
	for _, x := range vals {
		top = max(top, math.Float32bits(x)&0x7fffffff)
	}
	if top == 0 {
		clear(codes[:len(vals)])
		return 0
	}
	s := math.Float32frombits(top)
	emax, keep := uint32(quantEmaxV), true
	if signed {
		emax, keep = quantEmaxM, false
	}
	for i, x := range vals {
		b := math.Float32bits(x)
		u := encodeMagnitude(math.Float32frombits(b&0x7fffffff)/s, emax, keep)
		if signed && u != 0 && b>>31 != 0 {
			u |= 0x80
		}
		codes[i] = uint8(u)
	}
	return s
}

// Dequantize8 is the value of code under scale s.
func Dequantize8(code uint8, s float32, signed bool) float32 {
	u, emax, neg := uint32(code), uint32(quantEmaxV), false
	if signed {
		u, emax, neg = u&0x7f, quantEmaxM, code&0x80 != 0
	}
	x := s * codeValue(u, emax)
	if neg {
		x = -x
	}
	return x
}

// QuantizeBlocks encodes vals block by block (the last block may be short)
// into codes and scales (one per block).
func QuantizeBlocks(vals []float32, codes []uint8, scales []float32, signed bool) {
	for b := range (len(vals) + QuantBlock - 1) / QuantBlock {
		lo, hi := b*QuantBlock, min(len(vals), (b+1)*QuantBlock)
		scales[b] = Quantize8(vals[lo:hi], codes[lo:hi], signed)
	}
}

// DequantizeBlocks decodes codes with one scale per block into vals.
func DequantizeBlocks(codes []uint8, scales []float32, vals []float32, signed bool) {
	for i, c := range codes {
		vals[i] = Dequantize8(c, scales[i/QuantBlock], signed)
	}
}
