package optim

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/model"
)

// nearestBF16Uploads is the CPU backend with the CUDA backend's upload rule:
// values uploaded into a bf16 (Low) tensor are rounded to the nearest bf16.
type nearestBF16Uploads struct{ gpu.Backend }

func (b nearestBF16Uploads) Upload(t *gpu.Tensor, src []float32) error {
	if t.Prec == gpu.Low {
		r := make([]float32, len(src))
		for i, v := range src {
			r[i] = gpu.BF16Nearest(v)
		}
		src = r
	}
	return b.Backend.Upload(t, src)
}

// With bf16 gradient sums the gradient arena is bf16; a resume (or a
// rollback) must still restore fp32 and int8 moments to the bit, on a
// backend that rounds what goes into bf16 tensors as CUDA does.
func TestLoadMomentsKeepsEveryBit(t *testing.T) {
	momentsRoundTrip(t, nearestBF16Uploads{cpu.New(1)})
}

// momentsRoundTrip saves the moments of a one-step optimizer on be with
// bf16 gradient sums, loads them into a fresh one and wants every bit back.
func momentsRoundTrip(t *testing.T, be gpu.Backend) {
	for _, st := range []State{StateFP32, StateInt8} {
		newOpt := func() *Optimizer {
			m := smallModelOn(t, be, model.Options{GradAccum: 2, GradAccumBF16: true, GradAccumSeed: 5})
			if g := m.Layout().Grads; g == nil || g.Prec != gpu.Low {
				t.Fatalf("bf16 sums: gradient arena %v, want a Low one", g)
			}
			o, err := New(m, Config{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, CompactEps: 1e-6, WeightDecay: 0.1, UpdateGap: 50,
				Form: gpu.AdamHF, Precision: Precision{RoundWeights: true, State: st, Seed: 3}})
			if err != nil {
				t.Fatal(err)
			}
			return o
		}
		o := newOpt()
		if _, err := o.Update(0.01); err != nil {
			t.Fatal(err)
		}
		saved, err := o.Moments(0)
		if err != nil {
			t.Fatal(err)
		}
		lowBits := 0
		for _, nt := range saved {
			for _, v := range nt.Data {
				if !gpu.IsBF16(v) {
					lowBits++
				}
			}
		}
		if lowBits == 0 {
			t.Fatalf("%s: every moment is a bf16 value; the test would not see a rounding", st)
		}
		path := filepath.Join(t.TempDir(), "optimizer.safetensors")
		w, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := model.WriteSafetensors(w, saved); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		f, err := model.OpenSafetensors(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		o2 := newOpt()
		if err := o2.LoadMoments(f, filepath.Dir(path)); err != nil {
			t.Fatal(err)
		}
		loaded, err := o2.Moments(0)
		if err != nil {
			t.Fatal(err)
		}
		for i, nt := range saved {
			for k, v := range nt.Data {
				if got := loaded[i].Data[k]; math.Float32bits(got) != math.Float32bits(v) {
					t.Fatalf("%s: %s[%d] = %g after the round trip, saved %g", st, nt.Name, k, got, v)
				}
			}
		}
	}
}
