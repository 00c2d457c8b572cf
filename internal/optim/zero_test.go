package optim

import (
	"math/rand/v2"
	"testing"
)

// partition against every split of small random inputs: contiguous,
// non-empty runs covering every item, with the smallest possible largest
// run.
func TestPartitionIsOptimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		n := 1 + rng.IntN(8)
		world := 1 + rng.IntN(n)
		sizes := make([]int64, n)
		for i := range sizes {
			sizes[i] = 1 + rng.Int64N(100)
		}
		b := partition(sizes, world)
		if len(b) != world+1 || b[0] != 0 || b[world] != n {
			t.Fatalf("trial %d: sizes %v world %d: bounds %v", trial, sizes, world, b)
		}
		got := int64(0)
		for r := range world {
			if b[r+1] <= b[r] {
				t.Fatalf("trial %d: sizes %v world %d: run %d empty in %v", trial, sizes, world, r, b)
			}
			got = max(got, runSum(sizes[b[r]:b[r+1]]))
		}
		if want := bestSplit(sizes, world); got != want {
			t.Fatalf("trial %d: sizes %v world %d: largest run %d (bounds %v), best is %d", trial, sizes, world, got, b, want)
		}
	}
}

func runSum(s []int64) int64 {
	var n int64
	for _, x := range s {
		n += x
	}
	return n
}

// bestSplit tries every way to cut sizes into world non-empty runs.
func bestSplit(sizes []int64, world int) int64 {
	if world == 1 {
		return runSum(sizes)
	}
	best := int64(-1)
	for i := 1; i <= len(sizes)-world+1; i++ {
		v := max(runSum(sizes[:i]), bestSplit(sizes[i:], world-1))
		if best < 0 || v < best {
			best = v
		}
	}
	return best
}
