package gpu

// Stochastic rounding to bf16, the one rule shared by the CPU backend and
// csrc/rounding.cu (master-free weights and bf16 optimizer state). A value is
// rounded toward zero after adding uniform noise to the 16 bits that bf16
// drops, so it lands on one of its two bf16 neighbours with probabilities
// that make the rounding unbiased. The noise is a pure function of (seed,
// stream, step, element), so CPU and CUDA, and a resumed run, draw the same
// bits:
//
//	key     = (uint32(seed), uint32(seed >> 32))
//	element e (index in the arena the tensor is a view of); block = e / 4, lane = e % 4
//	counter = (uint32(block), stream, step, 0x53526E64)
//	r       = Philox4x32-10(counter, key)[lane] & 0xFFFF
//	bits    = float32 bits of x
//	NaN:      bf16 = (bits | 0x00400000) >> 16 (stays a quiet NaN)
//	else:     bf16 = (bits + r) >> 16
//
// Adding r to the sign-magnitude bits rounds the magnitude, so negative
// values are handled like positive ones; infinities have zero low bits and
// stay infinite; finite values above the largest bf16 may round to infinity,
// as their upper neighbour is infinity.

import (
	"fmt"
	"math"

	"github.com/compact-llm/compact/internal/projection"
)

// srCounterTag fills the last counter word of the rounding noise, apart from
// the projections' tag so the two never share a Philox stream.
const srCounterTag = 0x53526E64

// Rounding streams: each rounded tensor family draws its own noise.
const (
	StreamWeights  uint32 = iota // bf16 weights of master-free training
	StreamExpAvg                 // first Adam moment in bf16
	StreamExpAvgSq               // second Adam moment in bf16
)

// StreamGradAccum is the first stream of the bf16 gradient sums
// (train.grad_accum_state bf16): micro-batch k (1-based) of a step adds its
// fp32 gradients into the sums with stream StreamGradAccum + k, so each
// micro-batch draws its own noise, apart from the streams above.
const StreamGradAccum uint32 = 1 << 31

// RoundParams keys the noise of one stochastic rounding.
type RoundParams struct {
	Seed   uint64
	Stream uint32
	Step   uint32 // optimizer step (1-based)
	// Offset is the element index of the first element of dst in the arena
	// it belongs to, so a tensor rounded in chunks draws the same noise as
	// one rounded whole.
	Offset int64
}

// MaxRoundElements bounds the element index of the noise counter (32-bit
// block numbers of 4 elements).
const MaxRoundElements = int64(4) << 32

// RoundNoiseBlock returns the 16-bit noise of the four elements of block
// block (elements 4*block .. 4*block+3 of the arena).
func RoundNoiseBlock(rp RoundParams, block int64) [4]uint32 {
	x := projection.Philox4x32([4]uint32{uint32(block), rp.Stream, rp.Step, srCounterTag},
		[2]uint32{uint32(rp.Seed), uint32(rp.Seed >> 32)})
	for i := range x {
		x[i] &= 0xFFFF
	}
	return x
}

// RoundNoise is the 16-bit noise of element e (arena index) under rp.
func RoundNoise(rp RoundParams, e int64) uint32 { return RoundNoiseBlock(rp, e/4)[e%4] }

// BF16Stochastic rounds x to bf16 with noise r (0..65535) and returns the
// bf16 value as a float32.
func BF16Stochastic(x float32, r uint32) float32 {
	b := math.Float32bits(x)
	if b&0x7fffffff > 0x7f800000 {
		return math.Float32frombits((b | 0x00400000) & 0xffff0000)
	}
	return math.Float32frombits((b + r&0xffff) & 0xffff0000)
}

// BF16Nearest rounds x to the nearest bf16 (ties to even), as the CUDA
// backend's uploads and conversions do; NaN stays NaN.
func BF16Nearest(x float32) float32 {
	b := math.Float32bits(x)
	if b&0x7fffffff > 0x7f800000 {
		return math.Float32frombits((b | 0x00400000) & 0xffff0000)
	}
	return math.Float32frombits((b + 0x7fff + (b>>16)&1) & 0xffff0000)
}

// IsBF16 reports whether x is exactly representable in bf16.
func IsBF16(x float32) bool { return math.Float32bits(x)&0xffff == 0 }

// AdamRounding keys the stochastic roundings of Backend.Adam's bf16 stores
// (weights without an fp32 copy, bf16 moments) and places 8-bit moments:
// the stores round exactly as StochasticRound would round the fp32
// results, so one Adam call gives the bits of the fp32 step followed by
// the rounding.
type AdamRounding struct {
	Seed uint64
	Step uint32 // optimizer step (1-based)
	// Weights rounds p to bf16 (master-free weights, StreamWeights) at
	// arena element WeightOff; false stores p as AdamW does (an fp32 master,
	// or the CPU's float weights).
	Weights   bool
	WeightOff int64
	// MomentOff is the noise element of m[0] and v[0] (their gradient-layout
	// index); Low moments round with StreamExpAvg and StreamExpAvgSq. Code8
	// moments are not rounded, but their blocks start at multiples of
	// QuantBlock of this index.
	MomentOff int64
}

// WeightParams is the rounding of p.
func (a AdamRounding) WeightParams() RoundParams {
	return RoundParams{Seed: a.Seed, Stream: StreamWeights, Step: a.Step, Offset: a.WeightOff}
}

// MomentParams is the rounding of a moment drawn from stream (StreamExpAvg
// or StreamExpAvgSq).
func (a AdamRounding) MomentParams(stream uint32) RoundParams {
	return RoundParams{Seed: a.Seed, Stream: stream, Step: a.Step, Offset: a.MomentOff}
}

// CheckRange reports elements [Offset, Offset+n) that fall outside the noise
// counter; every rounding op refuses them.
func (rp RoundParams) CheckRange(n int) error {
	if rp.Offset < 0 || rp.Offset+int64(n) > MaxRoundElements {
		return fmt.Errorf("rounding elements [%d, %d) outside the noise counter's range", rp.Offset, rp.Offset+int64(n))
	}
	return nil
}
