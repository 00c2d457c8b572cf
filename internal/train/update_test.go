package train

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/optim"
	"github.com/compact-llm/compact/internal/projection"
)

// Tests of whole optimizer steps, taken by Trainer.step itself on fixed
// batches in float64, against the update written out by hand.

// fixedBatches serves the same micro-batches in a cycle.
type fixedBatches struct {
	in, tg [][]int32
	i      int
}

func (f *fixedBatches) Next() ([]int32, []int32, error) {
	k := f.i % len(f.in)
	f.i++
	return f.in[k], f.tg[k], nil
}
func (f *fixedBatches) Reset()                              { f.i = 0 }
func (f *fixedBatches) Close() error                        { return nil }
func (f *fixedBatches) EvalBatches(limit int) int           { return min(limit, len(f.in)) }
func (f *fixedBatches) SaveState() (json.RawMessage, error) { return nil, nil }
func (f *fixedBatches) RestoreState(json.RawMessage) error  { return nil }

// stepLR is exact in the optimizer's float32 hyper-parameters.
const stepLR = 1.0 / 64

// updateConfig is a small CompAct model with every update scale distinct:
// compressed alpha, o_proj alpha*o_proj_scale, everything else 1.
func updateConfig() config.Config {
	cfg := config.Default()
	cfg.Model = model.Config{VocabSize: 320, Hidden: 16, Intermediate: 24, Layers: 2, Heads: 4, KVHeads: 2,
		MaxSeqLen: 8, RopeTheta: 10000, RMSEps: 1e-6, InitStd: 0.1}
	cfg.Train.SeqLen, cfg.Train.MicroBatch, cfg.Train.GradAccum = 8, 2, 1
	cfg.Train.GradClip, cfg.Train.WeightDecay = 0, 0
	cfg.Compact.Rank, cfg.Compact.Alpha, cfg.Compact.OProjScale, cfg.Compact.Seed = 0.5, 0.25, 0.5, 5
	cfg.Data.Tokenizer = "byte"
	cfg.Train.Weights = config.WeightsMaster // exact fp32 updates, compared with hand computations
	return cfg
}

// stepper builds cfg on the float64 CPU backend with a trainer around it
// that takes steps at the constant rate stepLR.
func stepper(t *testing.T, cfg config.Config, src Batches) *Trainer {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	be := cpu.New64(2)
	m, err := NewModel(be, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Init(cfg.Train.Seed); err != nil {
		t.Fatal(err)
	}
	opt, err := optim.New(m, cfg.OptimizerConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &Trainer{cfg: cfg, be: be, model: m, opt: opt, train: src,
		sched: optim.Schedule{LR: stepLR, Total: 1 << 30, MinRatio: 1}}
}

func randomBatches(cfg config.Config, n, B int, seed uint64) *fixedBatches {
	rng := rand.New(rand.NewPCG(seed, 3))
	f := &fixedBatches{}
	T := cfg.Train.SeqLen
	for i := 0; i < n; i++ {
		in, tg := make([]int32, B*T), make([]int32, B*T)
		for j := range in {
			in[j], tg[j] = int32(rng.IntN(257)), int32(rng.IntN(257))
		}
		tg[(i*5)%len(tg)] = -1 // an ignored position
		f.in, f.tg = append(f.in, in), append(f.tg, tg)
	}
	return f
}

func download(t *testing.T, m *model.Model, x func(*model.Param) *gpu.Tensor) map[string][]float64 {
	t.Helper()
	out := map[string][]float64{}
	for _, p := range m.Params {
		v, err := m.Backend().DownloadF64(x(p))
		if err != nil {
			t.Fatal(err)
		}
		out[p.Name] = v
	}
	return out
}

func weightsOf(p *model.Param) *gpu.Tensor { return p.W }
func gradsOf(p *model.Param) *gpu.Tensor   { return p.Grad }

func maxRelDiff(a, b []float64) float64 {
	var d, s float64
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
		s = math.Max(s, math.Abs(b[i]))
	}
	return d / math.Max(s, 1e-300)
}

// Gradient accumulation: two micro-batches of B must give the gradients and
// the updates of one micro-batch of 2B holding both, compressed gradients
// included (they must add up across micro-batches, not overwrite).
func TestGradAccumEqualsDoubledMicroBatch(t *testing.T) {
	cfg := updateConfig()
	halves := randomBatches(cfg, 4, 2, 1)
	whole := &fixedBatches{}
	for i := 0; i < 4; i += 2 {
		whole.in = append(whole.in, append(append([]int32{}, halves.in[i]...), halves.in[i+1]...))
		whole.tg = append(whole.tg, append(append([]int32{}, halves.tg[i]...), halves.tg[i+1]...))
	}
	ca, cb := cfg, cfg
	ca.Train.GradAccum = 2
	cb.Train.MicroBatch = 4
	a, b := stepper(t, ca, halves), stepper(t, cb, whole)
	for step := 1; step <= 2; step++ {
		la, _, err := a.step(true)
		if err != nil {
			t.Fatal(err)
		}
		lb, _, err := b.step(true)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(la-lb) > 1e-12*math.Abs(lb) {
			t.Errorf("step %d: loss %v with grad_accum 2, %v with one doubled micro-batch", step, la, lb)
		}
		ga, gb := download(t, a.model, gradsOf), download(t, b.model, gradsOf)
		wa, wb := download(t, a.model, weightsOf), download(t, b.model, weightsOf)
		for _, p := range a.model.Params {
			if d := maxRelDiff(ga[p.Name], gb[p.Name]); d > 1e-12 {
				t.Errorf("step %d: %s (compressed %v) gradient differs by %.3g", step, p.Name, p.Compressed(), d)
			}
			if d := maxRelDiff(wa[p.Name], wb[p.Name]); d > 1e-12 {
				t.Errorf("step %d: %s (compressed %v) weights after the update differ by %.3g", step, p.Name, p.Compressed(), d)
			}
		}
	}
}

// handAdam is one parameter's Adam state, kept in float64 by the test.
type handAdam struct{ m, v []float64 }

// direction advances the moments with g and returns the direction of the
// HF form (the one CompAct runs resolve to) or torch's, from the textbook
// formulas with the optimizer's float32 hyper-parameters.
func (h *handAdam) direction(cfg config.Config, g []float64, step int, eps float64) []float64 {
	if h.m == nil {
		h.m, h.v = make([]float64, len(g)), make([]float64, len(g))
	}
	b1, b2 := float64(float32(cfg.Train.Beta1)), float64(float32(cfg.Train.Beta2))
	eps = float64(float32(eps))
	s := float64(step)
	dir := make([]float64, len(g))
	for i, gi := range g {
		h.m[i] = b1*h.m[i] + (1-b1)*gi
		h.v[i] = b2*h.v[i] + (1-b2)*gi*gi
		if cfg.OptimizerName() == config.OptimizerHF {
			dir[i] = math.Sqrt(1-math.Pow(b2, s)) / (1 - math.Pow(b1, s)) * h.m[i] / (math.Sqrt(h.v[i]) + eps)
		} else {
			dir[i] = h.m[i] / (1 - math.Pow(b1, s)) / (math.Sqrt(h.v[i]/(1-math.Pow(b2, s))) + eps)
		}
	}
	return dir
}

// bf16 is x rounded to the nearest bf16, as a Low tensor holds it.
func bf16(x float64) float64 { return float64(gpu.BF16Nearest(float32(x))) }

// lowProjection is the Gaussian P (n x r) of a stream and epoch as the
// model holds it: Low, so rounded to bf16 on every backend.
func lowProjection(n, r int, seed uint64, stream, epoch uint32) []float64 {
	P := make([]float64, n*r)
	projection.Fill(P, n, r, projection.Gaussian, seed, stream, epoch)
	for i, v := range P {
		P[i] = bf16(v)
	}
	return P
}

// matmul returns a (rows x k) times b (k x cols), with b transposed when bt
// (b is then cols x k).
func matmul(a, b []float64, rows, k, cols int, bt bool) []float64 {
	out := make([]float64, rows*cols)
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			var s float64
			for q := 0; q < k; q++ {
				if bt {
					s += a[i*k+q] * b[j*k+q]
				} else {
					s += a[i*k+q] * b[q*cols+j]
				}
			}
			out[i*cols+j] = s
		}
	}
	return out
}

// updateCheck takes `steps` training steps and checks each against the hand
// computation: a compressed param's G must be the full gradient (from a
// full-rank twin holding the same weights) times P of the step's epoch, its
// update -lr*alpha*N P^T with that same P; o_proj's update
// -lr*alpha*o_proj_scale*dir; every other param's -lr*dir. It returns one
// line per failed comparison, naming the step, the param and what differed.
func updateCheck(t *testing.T, cfg config.Config, steps int) []string {
	t.Helper()
	src := randomBatches(cfg, 3, cfg.Train.MicroBatch, 2)
	tr := stepper(t, cfg, src)
	full := cfg
	full.Compact.Enabled = false
	twin := stepper(t, full, src)
	m, tm := tr.model, twin.model
	state := map[string]*handAdam{}
	var fails []string
	failf := func(format string, a ...any) { fails = append(fails, fmt.Sprintf(format, a...)) }
	alpha, oscale := float64(float32(cfg.Compact.Alpha)), float64(float32(cfg.Compact.OProjScale)*float32(cfg.Compact.Alpha))
	for step := 1; step <= steps; step++ {
		// The twin gets the weights before the step and the step's batch.
		w0 := download(t, m, weightsOf)
		for _, p := range tm.Params {
			if err := cpu.UploadF64(tm.Backend(), p.W, w0[p.Name]); err != nil {
				t.Fatal(err)
			}
		}
		if err := tm.SyncWeights(); err != nil {
			t.Fatal(err)
		}
		in, tg := src.in[src.i%len(src.in)], src.tg[src.i%len(src.tg)]
		valid := 0
		for _, v := range tg {
			if v >= 0 {
				valid++
			}
		}
		tm.ZeroGrads()
		if err := tm.SetBatch(in, tg, cfg.Train.MicroBatch, cfg.Train.SeqLen); err != nil {
			t.Fatal(err)
		}
		if _, err := tm.Forward(true, 1/float32(valid)); err != nil {
			t.Fatal(err)
		}
		tm.Backward()
		dW := download(t, tm, gradsOf)

		if _, _, err := tr.step(true); err != nil {
			t.Fatal(err)
		}
		epoch := projection.Epoch(step, cfg.Compact.UpdateGap)
		G, w1 := download(t, m, gradsOf), download(t, m, weightsOf)
		for _, p := range m.Params {
			if state[p.Name] == nil {
				state[p.Name] = &handAdam{}
			}
			want := make([]float64, len(w1[p.Name]))
			if p.Compressed() {
				rows, n, r := p.W.Shape[0], p.W.Shape[1], p.Group.Rank
				P := lowProjection(n, r, cfg.Compact.Seed, projection.StreamID(p.Layer, p.Group.ID), epoch)
				if d := maxRelDiff(G[p.Name], matmul(dW[p.Name], P, rows, n, r, false)); d > 1e-10 {
					failf("step %d (epoch %d): %s: G differs from the full gradient times P of the step's epoch by %.3g", step, epoch, p.Name, d)
				}
				N := state[p.Name].direction(cfg, G[p.Name], step, cfg.Compact.Eps)
				for i, v := range N { // alpha is in the direction, which is stored in bf16
					N[i] = bf16(alpha * v)
				}
				upd := matmul(N, P, rows, r, n, true)
				for i := range want {
					want[i] = w0[p.Name][i] - stepLR*upd[i]
				}
			} else {
				if d := maxRelDiff(G[p.Name], dW[p.Name]); d > 1e-10 {
					failf("step %d: %s: gradient differs from the full-rank twin's by %.3g", step, p.Name, d)
				}
				s := 1.0
				if cfg.Compact.Enabled && strings.HasSuffix(p.Name, "self_attn.o_proj.weight") {
					s = oscale
				}
				dir := state[p.Name].direction(cfg, G[p.Name], step, cfg.AdamEpsilon())
				for i := range want {
					want[i] = w0[p.Name][i] - stepLR*s*dir[i]
				}
			}
			// The step is about stepLR per element; the rounding is far below.
			var d float64
			for i := range want {
				d = math.Max(d, math.Abs(w1[p.Name][i]-want[i]))
			}
			if d > 1e-12 {
				failf("step %d (epoch %d): %s: update differs from the hand computation by %.3g (step size %g)", step, epoch, p.Name, d, stepLR)
			}
		}
	}
	return fails
}

// Across update_gap boundaries the forward pass (which saves z = x P) and
// the update (which decompresses through P^T) must use P of the same
// epoch: the one of the step being taken.
func TestUpdateUsesTheStepsProjectionAcrossResamples(t *testing.T) {
	cfg := updateConfig()
	cfg.Compact.UpdateGap = 2 // epochs 0, 0, 1, 1, 2
	for _, share := range []bool{true, false} {
		cfg.Compact.Share = share
		for _, f := range updateCheck(t, cfg, 5) {
			t.Errorf("share %v: %s", share, f)
		}
	}
	cfg.Compact.Head = true // the LM head's P follows the same epochs
	for _, f := range updateCheck(t, cfg, 5) {
		t.Errorf("head: %s", f)
	}
}

// o_proj stays full rank under CompAct by default, its update scaled by
// alpha*o_proj_scale; everything outside the blocks' linears by 1. Checked
// for the pretraining recipe's scales and a fine-tuning one's (alpha 2,
// o_proj_scale 0.5: o_proj at 1, compressed layers at 2).
func TestOProjUpdateScale(t *testing.T) {
	for _, sc := range []struct{ alpha, oscale float64 }{{0.25, 0.5}, {2, 0.5}} {
		cfg := updateConfig()
		cfg.Compact.Alpha, cfg.Compact.OProjScale = sc.alpha, sc.oscale
		for _, f := range updateCheck(t, cfg, 2) {
			t.Errorf("alpha %g o_proj_scale %g: %s", sc.alpha, sc.oscale, f)
		}
	}
	// o_proj compressed (compact.layers with o, o_proj_scale 1): its G is
	// the full gradient times its P and its update is alpha N P^T, as every
	// compressed layer's.
	for _, alpha := range []float64{0.25, 2} {
		cfg := updateConfig()
		cfg.Compact.Alpha, cfg.Compact.OProjScale, cfg.Compact.Layers = alpha, 1, model.CompressibleLayers
		for _, f := range updateCheck(t, cfg, 2) {
			t.Errorf("o_proj compressed, alpha %g: %s", alpha, f)
		}
	}
	// Full rank: every param at scale 1 with torch's form.
	cfg := updateConfig()
	cfg.Compact.Enabled = false
	for _, f := range updateCheck(t, cfg, 2) {
		t.Errorf("full rank: %s", f)
	}
}
