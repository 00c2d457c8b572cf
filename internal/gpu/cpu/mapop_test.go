package cpu

import (
	"math/rand/v2"
	"testing"

	"github.com/compact-llm/compact/internal/gpu"
)

// Every MapOp has a CPU body (a missing case panics here, without a GPU),
// the float32 backend agrees with the float64 one to float32 rounding, the
// op runs in place on a view without touching the rows around it, and
// MapScale is the product it names.
func TestMapEveryOp(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	data := randn(r, 4*300, 1)
	b32, b64 := New(2), New64(2)
	b32.splitAll, b64.splitAll = true, true
	const alpha float32 = -1.7
	for _, op := range gpu.MapOps() {
		x32, x64 := mk(t, b32, "x", data, 4, 300), mk(t, b64, "x", data, 4, 300)
		b32.Map(op, x32.Rows(1, 3), alpha)
		b64.Map(op, x64.Rows(1, 3), alpha)
		got32, got64 := get(t, b32, x32), get(t, b64, x64)
		if e := relErr(got32, got64); e > 1e-6 {
			t.Errorf("%v: float32 vs float64 rel err %.3g", op, e)
		}
		for i, v := range got64 {
			if row := i / 300; (row == 0 || row == 3) && v != data[i] {
				t.Fatalf("%v on rows [1, 3) changed element %d of row %d", op, i, row)
			}
		}
		if op == gpu.MapScale {
			for i := 300; i < 900; i++ {
				if want := float64(alpha) * data[i]; got64[i] != want {
					t.Fatalf("scale element %d: %g, want %g", i, got64[i], want)
				}
			}
		}
	}
}
