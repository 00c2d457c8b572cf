package gpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// bf16Neighbours returns the bf16 values just below and above x in magnitude
// (equal when x is a bf16 value).
func bf16Neighbours(x float32) (lo, hi float32) {
	b := math.Float32bits(x)
	lo = math.Float32frombits(b & 0xffff0000)
	if b&0xffff == 0 {
		return lo, lo
	}
	return lo, math.Float32frombits(b&0xffff0000 + 0x10000)
}

func TestStochasticRoundUnbiased(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	rp := RoundParams{Seed: 42, Stream: StreamWeights}
	const draws = 20000
	for k := 0; k < 40; k++ {
		x := float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(9)-6)))
		lo, hi := bf16Neighbours(x)
		var sum float64
		ups := 0
		for s := 1; s <= draws; s++ {
			rp.Step = uint32(s)
			y := BF16Stochastic(x, RoundNoise(rp, int64(k)))
			if y != lo && y != hi {
				t.Fatalf("SR(%g) = %g, not a neighbour (%g, %g)", x, y, lo, hi)
			}
			if y != lo {
				ups++
			}
			sum += float64(y)
		}
		ulp := math.Abs(float64(hi) - float64(lo))
		p := math.Abs(float64(x)-float64(lo)) / ulp // probability of rounding away from zero
		sigma := ulp * math.Sqrt(p*(1-p)/draws)
		if mean := sum / draws; math.Abs(mean-float64(x)) > 5*sigma+1e-3*ulp/draws {
			t.Errorf("x = %g: mean of %d SR roundings %g (bias %g, 5 sigma %g)", x, draws, mean, mean-float64(x), 5*sigma)
		}
		if frac := float64(ups) / draws; math.Abs(frac-p) > 5*math.Sqrt(p*(1-p)/draws)+1e-9 {
			t.Errorf("x = %g: rounded away from zero %.4f of the time, want %.4f", x, frac, p)
		}
	}
}

func TestStochasticRoundSpecials(t *testing.T) {
	nan := float32(math.NaN())
	for _, r := range []uint32{0, 1, 0x7fff, 0xffff} {
		for _, x := range []float32{0, float32(math.Copysign(0, -1)), 1, -1, float32(math.Inf(1)), float32(math.Inf(-1)), 3.140625} {
			if y := BF16Stochastic(x, r); math.Float32bits(y) != math.Float32bits(x) {
				t.Errorf("SR(%g, r=%#x) = %g: a bf16 value must stay as it is", x, r, y)
			}
		}
		if y := BF16Stochastic(nan, r); y == y || !IsBF16(y) {
			t.Errorf("SR(NaN, r=%#x) = %g (bits %#x), want a bf16 NaN", r, y, math.Float32bits(y))
		}
		// A NaN whose payload sits only in the dropped bits must not become Inf.
		low := math.Float32frombits(0x7f800001)
		if y := BF16Stochastic(low, r); y == y {
			t.Errorf("SR of a low-payload NaN gave %g", y)
		}
	}
	// The sign is kept and the magnitude rounded: -x rounds as x does.
	x := float32(1.00390625 + 1.0/1024) // between bf16 neighbours
	for r := uint32(0); r < 1<<16; r += 997 {
		if BF16Stochastic(-x, r) != -BF16Stochastic(x, r) {
			t.Fatalf("r=%#x: SR(-x) != -SR(x)", r)
		}
	}
}

func TestStochasticRoundDeterministic(t *testing.T) {
	rp := RoundParams{Seed: 1234567, Stream: StreamExpAvg, Step: 9}
	if a, b := RoundNoise(rp, 1001), RoundNoise(rp, 1001); a != b {
		t.Fatal("same (seed, stream, step, element) gave different noise")
	}
	// Each part of the key changes the noise.
	same := func(q RoundParams) int {
		n := 0
		for e := int64(0); e < 4096; e++ {
			if RoundNoise(rp, e) == RoundNoise(q, e) {
				n++
			}
		}
		return n
	}
	for _, q := range []RoundParams{{Seed: 1234568, Stream: StreamExpAvg, Step: 9},
		{Seed: 1234567, Stream: StreamExpAvgSq, Step: 9}, {Seed: 1234567, Stream: StreamExpAvg, Step: 10}} {
		if n := same(q); n > 10 { // chance: 4096/65536 = 0.06 expected
			t.Errorf("%+v: %d of 4096 noise values equal to %+v's", q, n, rp)
		}
	}
}
