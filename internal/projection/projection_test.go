package projection

import (
	"fmt"
	"math"
	"testing"
)

// Known-answer vectors from the Random123 Philox4x32-10 reference (kat_vectors).
func TestPhiloxKnownAnswers(t *testing.T) {
	cases := []struct {
		c    [4]uint32
		k    [2]uint32
		want [4]uint32
	}{
		{[4]uint32{0, 0, 0, 0}, [2]uint32{0, 0}, [4]uint32{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
		{[4]uint32{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, [2]uint32{0xffffffff, 0xffffffff},
			[4]uint32{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
		{[4]uint32{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, [2]uint32{0xa4093822, 0x299f31d0},
			[4]uint32{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
	}
	for _, c := range cases {
		if got := Philox4x32(c.c, c.k); got != c.want {
			t.Errorf("Philox4x32(%x, %x) = %x, want %x", c.c, c.k, got, c.want)
		}
	}
}

func TestSameStreamSameP(t *testing.T) {
	a, b := make([]float64, 64*16), make([]float64, 64*16)
	Fill(a, 64, 16, Gaussian, 42, StreamID(3, GroupQKV), 5)
	Fill(b, 64, 16, Gaussian, 42, StreamID(3, GroupQKV), 5)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("element %d differs between two fills of one stream", i)
		}
	}
	for name, f := range map[string]func([]float64){
		"seed":  func(d []float64) { Fill(d, 64, 16, Gaussian, 43, StreamID(3, GroupQKV), 5) },
		"layer": func(d []float64) { Fill(d, 64, 16, Gaussian, 42, StreamID(4, GroupQKV), 5) },
		"group": func(d []float64) { Fill(d, 64, 16, Gaussian, 42, StreamID(3, GroupDown), 5) },
		"epoch": func(d []float64) { Fill(d, 64, 16, Gaussian, 42, StreamID(3, GroupQKV), 6) },
		"kind":  func(d []float64) { Fill(d, 64, 16, Rademacher, 42, StreamID(3, GroupQKV), 5) },
		"o":     func(d []float64) { Fill(d, 64, 16, Gaussian, 42, StreamID(3, GroupO), 5) },
	} {
		f(b)
		same := 0
		for i := range a {
			if a[i] == b[i] {
				same++
			}
		}
		if same > len(a)/10 {
			t.Errorf("changing the %s left %d of %d elements equal", name, same, len(a))
		}
	}
}

// P ~ N(0, 1/r): entries have mean 0 and variance 1/r, and P P^T tends to
// the identity as r grows (its error shrinks like sqrt(n/r)).
func TestGaussianMomentsAndIdentity(t *testing.T) {
	n := 64
	prevErr := math.Inf(1)
	for _, r := range []int{16, 256, 4096} {
		P := make([]float64, n*r)
		Fill(P, n, r, Gaussian, 1, 0, 0)
		var mean, sq float64
		for _, v := range P {
			mean += v
			sq += v * v
		}
		mean /= float64(len(P))
		variance := sq/float64(len(P)) - mean*mean
		if math.Abs(variance*float64(r)-1) > 0.05 {
			t.Errorf("r=%d: variance*r = %.4f, want 1", r, variance*float64(r))
		}
		if math.Abs(mean)*math.Sqrt(float64(r*len(P))) > 5 {
			t.Errorf("r=%d: mean %.4g is over 5 standard errors from 0", r, mean)
		}
		var errF float64
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				var s float64
				for k := 0; k < r; k++ {
					s += P[i*r+k] * P[j*r+k]
				}
				if i == j {
					s--
				}
				errF += s * s
			}
		}
		errF = math.Sqrt(errF) / float64(n) // RMS entry error ~ 1/sqrt(r)
		if errF >= prevErr {
			t.Errorf("r=%d: ||PP^T - I|| = %.4f did not shrink from %.4f", r, errF, prevErr)
		}
		if want := 2 / math.Sqrt(float64(r)); errF > want {
			t.Errorf("r=%d: RMS error of PP^T %.4f above %.4f", r, errF, want)
		}
		prevErr = errF
	}
}

func TestRademacherValues(t *testing.T) {
	P := make([]float64, 32*8)
	Fill(P, 32, 8, Rademacher, 1, 0, 0)
	plus := 0
	for _, v := range P {
		if math.Abs(math.Abs(v)-1/math.Sqrt(8)) > 1e-15 {
			t.Fatalf("entry %v is not ±1/sqrt(8)", v)
		}
		if v > 0 {
			plus++
		}
	}
	if plus < len(P)/4 || plus > 3*len(P)/4 {
		t.Errorf("%d of %d entries positive", plus, len(P))
	}
}

func TestRankAndEpoch(t *testing.T) {
	if r, _ := Rank(0.25, 512); r != 128 {
		t.Errorf("0.25 of 512 = %d", r)
	}
	if r, _ := Rank(8, 512); r != 8 {
		t.Errorf("absolute 8 = %d", r)
	}
	// Halves round to even, as Python's round() in the CompAct code:
	// round(0.5*5) = 2, round(0.25*1378) = 344, round(0.5*7) = 4.
	for _, c := range []struct {
		rank    float64
		n, want int
	}{{0.5, 5, 2}, {0.25, 1378, 344}, {0.5, 7, 4}, {0.25, 1374, 344}} {
		if r, _ := Rank(c.rank, c.n); r != c.want {
			t.Errorf("Rank(%g, %d) = %d, want %d (half to even)", c.rank, c.n, r, c.want)
		}
	}
	for _, bad := range []float64{0, -1, 600, 2.5, 1} {
		if _, err := Rank(bad, 512); err == nil {
			t.Errorf("rank %g accepted", bad)
		}
	}
	for step, want := range map[int]uint32{1: 0, 50: 0, 51: 1, 100: 1, 101: 2} {
		if got := Epoch(step, 50); got != want {
			t.Errorf("Epoch(%d, 50) = %d, want %d", step, got, want)
		}
	}
}

// Every (layer, group) of a model, o_proj's and the LM head's included, has
// its own stream, and the streams of the groups that existed before o_proj
// could be compressed keep their numbers (runs without it keep their bits).
func TestStreamsAreDistinct(t *testing.T) {
	const layers = 64
	seen := map[uint32]string{}
	for l := 0; l <= layers; l++ { // layer num_layers: the LM head's
		for g := GroupQKV; g <= GroupO; g++ {
			s := StreamID(l, g)
			if prev, ok := seen[s]; ok {
				t.Fatalf("layer %d group %d has stream %d, as %s", l, g, s, prev)
			}
			seen[s] = fmt.Sprintf("layer %d group %d", l, g)
		}
	}
	if StreamID(3, GroupDown) != 3*8+GroupDown || StreamID(0, GroupUp) != GroupUp {
		t.Errorf("the blocks' streams moved: layer 3 down %d, layer 0 up %d", StreamID(3, GroupDown), StreamID(0, GroupUp))
	}
}
