package gpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// quantBound is the stated precision of the 8-bit code (quant8.go): within
// a relative 1/16 of the value, or, below the code's range, an absolute
// s*2^-15 (first moment) or s*2^-30 (second) of the block's scale s; the
// fp32 division and multiplication add a relative 2^-22 at most.
func quantBound(x, s float32, signed bool) float64 {
	floor := math.Ldexp(float64(s), -30)
	if signed {
		floor = math.Ldexp(float64(s), -15)
	}
	return math.Abs(float64(x))/16*(1+math.Ldexp(1, -20)) + floor
}

// randomBlock is n values spanning 14 decades, with zeros, of either sign
// (signed) or non-negative.
func randomBlock(rng *rand.Rand, n int, signed bool) []float32 {
	v := make([]float32, n)
	for i := range v {
		if rng.IntN(11) == 0 {
			continue
		}
		x := math.Exp(rng.Float64()*32 - 24) // 3.8e-11 .. 2.9e3
		if signed && rng.IntN(2) == 0 {
			x = -x
		}
		v[i] = float32(x)
	}
	return v
}

// Every value decodes within the stated bound of itself; zeros stay zero;
// a second moment that is not zero never decodes to zero; the block's
// largest magnitude is its scale and decodes exactly; and encoding the
// decoded block again gives the same codes and scale (what a checkpoint
// relies on).
func TestQuant8RoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 1))
	for trial := range 2000 {
		signed := trial%2 == 0
		n := 1 + rng.IntN(QuantBlock)
		vals := randomBlock(rng, n, signed)
		if trial%50 == 0 { // a narrow block: every value near the largest
			for i := range vals {
				vals[i] = float32(1 + rng.Float64()*1e-3)
			}
		}
		codes := make([]uint8, n)
		s := Quantize8(vals, codes, signed)
		var top float32
		for _, x := range vals {
			top = max(top, float32(math.Abs(float64(x))))
		}
		if s != top {
			t.Fatalf("trial %d: scale %g, largest magnitude %g", trial, s, top)
		}
		back := make([]float32, n)
		for i, c := range codes {
			back[i] = Dequantize8(c, s, signed)
			x := vals[i]
			switch {
			case x == 0 && (back[i] != 0 || c != 0):
				t.Fatalf("trial %d: zero encoded %#x, decodes %g", trial, c, back[i])
			case !signed && x > 0 && back[i] == 0:
				t.Fatalf("trial %d: second moment %g decodes to zero", trial, x)
			case math.Abs(float64(back[i]-x)) > quantBound(x, s, signed):
				t.Fatalf("trial %d (signed %v): %g decodes %g (code %#x, scale %g), beyond the bound %g", trial, signed, x, back[i], c, s, quantBound(x, s, signed))
			case math.Abs(float64(x)) == float64(top) && math.Abs(float64(back[i])) != float64(s):
				t.Fatalf("trial %d: the largest value %g decodes %g, not its scale", trial, x, back[i])
			}
		}
		again := make([]uint8, n)
		if s2 := Quantize8(back, again, signed); s2 != s {
			t.Fatalf("trial %d: re-encoding the decoded block gives scale %g, was %g", trial, s2, s)
		}
		for i := range codes {
			if again[i] != codes[i] {
				t.Fatalf("trial %d: element %d re-encodes to %#x, was %#x (value %g)", trial, i, again[i], codes[i], back[i])
			}
		}
	}
}

// The code is monotone in the value, so ordering survives quantization,
// and the mean relative error over a wide spread stays near 1/32.
func TestQuant8Monotone(t *testing.T) {
	for _, signed := range []bool{true, false} {
		prev, prevVal := uint32(0), float32(0)
		var sum float64
		var n int
		for k := 0; k <= 4000; k++ {
			x := float32(math.Pow(2, -float64(k)/100)) // 1 down to 2^-40
			codes := []uint8{0, 0}
			Quantize8([]float32{1, x}, codes, signed)
			u := uint32(codes[1] & 0x7f)
			if !signed {
				u = uint32(codes[1])
			}
			if k > 0 && u > prev {
				t.Fatalf("signed %v: %g codes %d above %g's %d", signed, x, u, prevVal, prev)
			}
			prev, prevVal = u, x
			if d := Dequantize8(codes[1], 1, signed); d != 0 && x > 1e-4 {
				sum += math.Abs(float64(d-x)) / float64(x)
				n++
			}
		}
		if mean := sum / float64(n); mean > 1.0/24 {
			t.Errorf("signed %v: mean relative error %.4f, want about 1/32", signed, mean)
		}
	}
}

// An all-zero block has scale 0 and zero codes; a NaN makes the scale NaN
// and every decoded value non-finite, so a diverged moment is never
// mistaken for a finite one.
func TestQuant8Specials(t *testing.T) {
	codes := make([]uint8, 4)
	if s := Quantize8([]float32{0, float32(math.Copysign(0, -1)), 0, 0}, codes, true); s != 0 || codes[0]|codes[1]|codes[2]|codes[3] != 0 {
		t.Errorf("zero block: scale %g codes %v", s, codes)
	}
	s := Quantize8([]float32{1, float32(math.NaN()), -2, 0}, codes, true)
	if !math.IsNaN(float64(s)) {
		t.Errorf("a NaN in the block: scale %g", s)
	}
	for i, c := range codes {
		if d := Dequantize8(c, s, true); !math.IsNaN(float64(d)) && !math.IsInf(float64(d), 0) {
			t.Errorf("element %d decodes %g under a NaN scale", i, d)
		}
	}
	vals := make([]float32, 300)
	for i := range vals {
		vals[i] = float32(i)
	}
	c8, scales, back := make([]uint8, 300), make([]float32, 3), make([]float32, 300)
	QuantizeBlocks(vals, c8, scales, false)
	DequantizeBlocks(c8, scales, back, false)
	if scales[0] != 127 || scales[1] != 255 || scales[2] != 299 {
		t.Errorf("block scales %v, want each block's largest (127, 255, 299)", scales)
	}
	for i := range vals {
		if math.Abs(float64(back[i]-vals[i])) > quantBound(vals[i], scales[i/QuantBlock], false) {
			t.Fatalf("element %d: %g decodes %g", i, vals[i], back[i])
		}
	}
}
