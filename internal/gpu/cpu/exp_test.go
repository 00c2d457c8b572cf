package cpu

import (
	"math"
	"testing"
)

// exp32 must stay within 2 ulp of the correctly rounded float32 e^x over the
// whole range softmax and SiLU use, and get the edges right.
func TestExp32(t *testing.T) {
	ulp := func(f float32) float64 {
		return float64(math.Nextafter32(f, float32(math.Inf(1))) - f)
	}
	worst := 0.0
	for x := float32(-87.3); x <= 88.7; x += 0.000731 {
		got, want := exp32(x), float32(math.Exp(float64(x)))
		e := math.Abs(float64(got)-math.Exp(float64(x))) / ulp(want)
		worst = max(worst, e)
		if e > 2 {
			t.Fatalf("exp32(%v) = %v, want %v (%.2f ulp)", x, got, want, e)
		}
	}
	t.Logf("worst error %.2f ulp", worst)
	if exp32(0) != 1 {
		t.Errorf("exp32(0) = %v, want exactly 1", exp32(0))
	}
	if v := exp32(-100); v != 0 {
		t.Errorf("exp32(-100) = %v, want 0", v)
	}
	if v := exp32(float32(math.Inf(-1))); v != 0 {
		t.Errorf("exp32(-Inf) = %v, want 0", v)
	}
	if v := exp32(100); !math.IsInf(float64(v), 1) {
		t.Errorf("exp32(100) = %v, want +Inf", v)
	}
	if v := exp32(float32(math.NaN())); v == v {
		t.Errorf("exp32(NaN) = %v, want NaN", v)
	}
}
