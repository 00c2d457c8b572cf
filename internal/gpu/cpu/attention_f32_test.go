package cpu

import (
	"github.com/compact-llm/compact/internal/gpu"
	"math"
	"math/rand/v2"
	"testing"
)

// attnRun runs attention forward and backward on b with inputs from seed and
// returns out, lse, dq, dk, dv. The gradient tensors start with garbage, which
// the backward must overwrite.
func attnRun(t *testing.T, b gpu.Backend, seed uint64, B, T, H, KV, D int) [][]float64 {
	r := rand.New(rand.NewPCG(seed, 5))
	N := B * T
	q := mk(t, b, "q", randn(r, N*H*D, 1.5), N, H*D)
	k := mk(t, b, "k", randn(r, N*KV*D, 1.5), N, KV*D)
	v := mk(t, b, "v", randn(r, N*KV*D, 1), N, KV*D)
	dout := mk(t, b, "dout", randn(r, N*H*D, 1), N, H*D)
	out, lse := mk(t, b, "out", randn(r, N*H*D, 1), N, H*D), mk(t, b, "lse", randn(r, B*H*T, 1), B*H*T)
	dq := mk(t, b, "dq", randn(r, N*H*D, 1), N, H*D)
	dk := mk(t, b, "dk", randn(r, N*KV*D, 1), N, KV*D)
	dv := mk(t, b, "dv", randn(r, N*KV*D, 1), N, KV*D)
	b.Attention(out, lse, q, k, v, B, T, H, KV, D)
	b.AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse, B, T, H, KV, D)
	return [][]float64{get(t, b, out), get(t, b, lse), get(t, b, dq), get(t, b, dk), get(t, b, dv)}
}

var attnShapes = []struct{ B, T, H, KV, D int }{
	{1, 1, 1, 1, 4}, {2, 7, 4, 2, 8}, {1, 64, 2, 2, 16}, {2, 65, 4, 1, 8}, {1, 150, 4, 2, 32},
}

// The float32 blocked attention (more than one query block for T > 64, the
// last one partial) must agree with the float64 reference.
func TestAttentionF32MatchesFloat64(t *testing.T) {
	if !New(1).attnF32() {
		t.Skip("no AVX2+FMA: float32 attention uses the reference loops")
	}
	names := []string{"out", "lse", "dq", "dk", "dv"}
	for i, s := range attnShapes {
		got := attnRun(t, New(2), uint64(i), s.B, s.T, s.H, s.KV, s.D)
		want := attnRun(t, New64(2), uint64(i), s.B, s.T, s.H, s.KV, s.D)
		for j := range got {
			if e := relErr(got[j], want[j]); !(e < 2e-6) {
				t.Errorf("%+v %s: float32 vs float64 rel error %.3g", s, names[j], e)
			}
		}
	}
}

// Work is split over (sequence, head) units with single-threaded GEMMs inside,
// so the thread count must not change a bit.
func TestAttentionThreadCountBitIdentical(t *testing.T) {
	for i, s := range attnShapes {
		mkb := func(threads int) gpu.Backend { b := New(threads); b.splitAll = true; return b }
		first := attnRun(t, mkb(1), uint64(i), s.B, s.T, s.H, s.KV, s.D)
		for _, threads := range []int{2, 3} {
			again := attnRun(t, mkb(threads), uint64(i), s.B, s.T, s.H, s.KV, s.D)
			for j := range first {
				for x := range first[j] {
					if math.Float64bits(first[j][x]) != math.Float64bits(again[j][x]) {
						t.Fatalf("%+v threads=%d: result %d element %d = %v, threads=1 gave %v", s, threads, j, x, again[j][x], first[j][x])
					}
				}
			}
		}
	}
}
