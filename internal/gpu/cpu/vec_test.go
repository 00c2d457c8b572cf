package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The float32 SwiGLU (the vector kernel where the CPU has AVX2+FMA) must match
// the float64 formulas element by element, for every length mod 8 (the tail
// goes through a padded group), for large |g| where exp saturates, and when
// the backward runs in place.
func TestSwiGLUF32MatchesFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 2))
	b := New(2)
	for n := 1; n <= 41; n += 4 {
		gv, uv, dv := randn(r, n, 3), randn(r, n, 1), randn(r, n, 1)
		gv[0] = 95 * float64(n%3-1) // -95, 0 or 95
		g, u := mk(t, b, "g", gv, n), mk(t, b, "u", uv, n)
		out := mk(t, b, "out", nil, n)
		b.SwiGLU(out, g, u)
		b.SwiGLUBackward(g, u, mk(t, b, "dout", dv, n), g, u) // in place
		o, dg, du := get(t, b, out), get(t, b, g), get(t, b, u)
		for i := 0; i < n; i++ {
			x, y, d := float64(float32(gv[i])), float64(float32(uv[i])), float64(float32(dv[i]))
			s := 1 / (1 + math.Exp(-x))
			want := [3]float64{x * s * y, d * y * s * (1 + x*(1-s)), d * x * s}
			got := [3]float64{o[i], dg[i], du[i]}
			for k, name := range []string{"out", "dgate", "dup"} {
				if e := math.Abs(got[k] - want[k]); !(e <= 1e-6*math.Abs(want[k])+1e-30) {
					t.Errorf("n=%d %s[%d] (g=%v) = %v, want %v", n, name, i, x, got[k], want[k])
				}
			}
		}
	}
}

// expSubF32 (vector on AVX2) must be within 2 ulp of exp(x - sub) for every
// length mod 8, and saturate instead of overflowing.
func TestExpSubF32(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 3))
	for n := 1; n <= 40; n += 3 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * 20)
		}
		orig := append([]float32(nil), x...)
		sub := float32(r.NormFloat64())
		expSubF32(x, sub)
		for i, v := range x {
			d := float64(orig[i] - sub)
			want := math.Exp(d)
			if d < -87.3 || d > 88.7 { // clamped range
				continue
			}
			ulp := float64(math.Nextafter32(float32(want), float32(math.Inf(1))) - float32(want))
			if e := math.Abs(float64(v)-want) / ulp; !(e <= 2) {
				t.Errorf("n=%d: exp(%v) = %v, want %v (%.1f ulp)", n, d, v, want, e)
			}
		}
	}
	x := []float32{-1000, 1000}
	expSubF32(x, 0)
	if !(x[0] >= 0 && x[0] < 1e-37) || math.IsInf(float64(x[1]), 0) || !(x[1] > 1e38) {
		t.Errorf("saturation: exp(-1000), exp(1000) = %v, %v", x[0], x[1])
	}
}
