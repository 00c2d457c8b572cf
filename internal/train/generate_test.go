package train

import (
	"math"
	"math/rand/v2"
	"testing"
)

// pick draws from softmax(logits / T) restricted to the top k, then to the
// smallest prefix reaching top_p: the frequencies of many draws match those
// probabilities, and nothing outside the kept set is ever drawn.
func TestPickFollowsTheTruncatedSoftmax(t *testing.T) {
	logits := []float64{1.0, 3.0, 2.0, 0.5, 2.5}
	// want is softmax(logits / temp) over the indices kept, renormalised.
	want := func(temp float64, keep []int) map[int]float64 {
		p, sum := map[int]float64{}, 0.0
		for _, i := range keep {
			p[i] = math.Exp(logits[i] / temp)
			sum += p[i]
		}
		for i := range p {
			p[i] /= sum
		}
		return p
	}
	for _, c := range []struct {
		name string
		so   SampleOptions
		keep []int // in descending logit order
	}{
		{"plain", SampleOptions{Temperature: 1, TopP: 1}, []int{1, 4, 2, 0, 3}},
		{"hot", SampleOptions{Temperature: 3, TopP: 1}, []int{1, 4, 2, 0, 3}},
		{"top-k 2", SampleOptions{Temperature: 1, TopK: 2, TopP: 1}, []int{1, 4}},
		// softmax over 3, 2.5, 2, 1, 0.5: 0.456, 0.277, 0.168, ...: 0.6 needs the first two.
		{"top-p 0.6", SampleOptions{Temperature: 1, TopP: 0.6}, []int{1, 4}},
		{"top-k 3 then top-p 0.99", SampleOptions{Temperature: 1, TopK: 3, TopP: 0.99}, []int{1, 4, 2}},
	} {
		rng := rand.New(rand.NewPCG(1, 2))
		const n = 40000
		got := map[int]int{}
		for range n {
			got[pick(logits, c.so, rng)]++
		}
		p := want(c.so.Temperature, c.keep)
		for i := range logits {
			f := float64(got[i]) / n
			if math.Abs(f-p[i]) > 0.01 { // 5 standard errors at most
				t.Errorf("%s: token %d drawn %.4f of the time, want %.4f", c.name, i, f, p[i])
			}
		}
	}
	// Greedy, and a top-k of one, take the argmax.
	for _, so := range []SampleOptions{{TopP: 1}, {Temperature: 5, TopK: 1, TopP: 1}, {Temperature: 1, TopP: 1e-9}} {
		rng := rand.New(rand.NewPCG(3, 4))
		for range 100 {
			if i := pick(logits, so, rng); i != 1 {
				t.Fatalf("%+v picked %d, want the argmax 1", so, i)
			}
		}
	}
}
