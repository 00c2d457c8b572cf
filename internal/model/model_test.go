package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/projection"
)

// testConfig is a model small enough for float64 finite differences, with
// grouped-query attention and an untied head.
func testConfig() Config {
	return Config{VocabSize: 11, Hidden: 8, Intermediate: 12, Layers: 2, Heads: 2, KVHeads: 1,
		MaxSeqLen: 8, RopeTheta: 10000, RMSEps: 1e-6, InitStd: 0.3}
}

func compactOn(share bool) CompactConfig {
	return CompactConfig{Enabled: true, Rank: 0.5, Layers: DefaultLayers, Share: share,
		Projection: "gaussian", UpdateGap: 50, Alpha: 0.25, OProjScale: 0.5, Seed: 7, Eps: 1e-6}
}

// compactO is compactOn(share) with o_proj compressed too (compact.layers
// with o, which takes compact.o_proj_scale 1).
func compactO(share bool) CompactConfig {
	cc := compactOn(share)
	cc.Layers, cc.OProjScale = CompressibleLayers, 1
	return cc
}

// compactHead is compactOn(true) with the LM head compressed too.
func compactHead() CompactConfig {
	cc := compactOn(true)
	cc.Head = true
	return cc
}

// TestCompactHeadNeedsUntiedHead: compact.head compresses an untied LM head
// only; a tied head is the embedding, whose gradient stays full.
func TestCompactHeadNeedsUntiedHead(t *testing.T) {
	cfg := testConfig()
	cfg.TieEmbeddings = true
	m := newTestModel(t, cpu.New(1), cfg, Options{Compact: compactHead()})
	for _, p := range m.Params {
		if p.Layer < 0 && p.Compressed() {
			t.Errorf("tied model: %s is compressed", p.Name)
		}
	}
}

type batch struct {
	B, T        int
	in, targets []int32
}

func randomBatch(cfg Config, B, T int, seed uint64) batch {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := batch{B: B, T: T, in: make([]int32, B*T), targets: make([]int32, B*T)}
	for i := range b.in {
		b.in[i] = int32(rng.IntN(cfg.VocabSize))
		b.targets[i] = int32(rng.IntN(cfg.VocabSize))
	}
	b.targets[3] = -1 // an ignored position
	return b
}

func newTestModel(t *testing.T, be gpu.Backend, cfg Config, opts Options) *Model {
	t.Helper()
	m, err := New(be, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Init(3); err != nil {
		t.Fatal(err)
	}
	// Norm weights of 1 would hide a missing dw term; perturb them.
	rng := rand.New(rand.NewPCG(9, 9))
	for _, p := range m.Params {
		if len(p.W.Shape) == 1 {
			w := make([]float64, p.W.Len())
			for i := range w {
				w[i] = 1 + 0.3*rng.NormFloat64()
			}
			if err := cpu.UploadF64(be, p.W, w); err != nil {
				t.Fatal(err)
			}
		}
	}
	return m
}

func valid(b batch) int {
	n := 0
	for _, v := range b.targets {
		if v >= 0 {
			n++
		}
	}
	return n
}

// lossAndGrads returns the mean loss and every parameter's gradient.
func lossAndGrads(t *testing.T, m *Model, b batch) (float64, map[string][]float64) {
	t.Helper()
	if err := m.SetBatch(b.in, b.targets, b.B, b.T); err != nil {
		t.Fatal(err)
	}
	m.ZeroGrads()
	n := valid(b)
	sum, err := m.Forward(true, 1/float32(n))
	if err != nil {
		t.Fatal(err)
	}
	m.Backward()
	grads := map[string][]float64{}
	for _, p := range m.Params {
		g, err := m.be.DownloadF64(p.Grad)
		if err != nil {
			t.Fatal(err)
		}
		grads[p.Name] = crop(g, p.Grad.Shape, p.LogicalShape(p.Grad))
	}
	return sum / float64(n), grads
}

func meanLoss(t *testing.T, m *Model, b batch) float64 {
	t.Helper()
	if err := m.SetBatch(b.in, b.targets, b.B, b.T); err != nil {
		t.Fatal(err)
	}
	sum, err := m.Forward(false, 0)
	if err != nil {
		t.Fatal(err)
	}
	return sum / float64(valid(b))
}

// checkFiniteDifferences compares every parameter's gradient (but those
// skip names) with float64 central differences of the mean loss.
func checkFiniteDifferences(t *testing.T, m *Model, b batch, grads map[string][]float64, skip func(*Param) bool, label string) {
	t.Helper()
	const h = 1e-6
	for _, p := range m.Params {
		if skip != nil && skip(p) {
			continue
		}
		w, _ := m.be.DownloadF64(p.W)
		fd := make([]float64, len(w))
		for i := range w {
			orig := w[i]
			w[i] = orig + h
			cpu.UploadF64(m.be, p.W, w)
			lp := meanLoss(t, m, b)
			w[i] = orig - h
			cpu.UploadF64(m.be, p.W, w)
			lm := meanLoss(t, m, b)
			w[i] = orig
			cpu.UploadF64(m.be, p.W, w)
			fd[i] = (lp - lm) / (2 * h)
		}
		if e := relErr(grads[p.Name], fd); e > 1e-6 {
			t.Errorf("%s: %s: gradient vs finite differences rel err %.3g", label, p.Name, e)
		}
	}
}

func relErr(a, b []float64) float64 {
	var num, den float64
	for i := range a {
		num += (a[i] - b[i]) * (a[i] - b[i])
		den += b[i] * b[i]
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// TestModelGradientsFiniteDifference checks every parameter's gradient of
// the whole model against float64 central differences, for each
// recomputation policy.
func TestModelGradientsFiniteDifference(t *testing.T) {
	cfg := testConfig()
	b := randomBatch(cfg, 2, 5, 1)
	for rc := range Recompute(len(RecomputeNames)) {
		for _, tied := range []bool{false, true} {
			c := cfg
			c.TieEmbeddings = tied
			be := cpu.New64(2)
			m := newTestModel(t, be, c, Options{Recompute: rc})
			_, grads := lossAndGrads(t, m, b)
			checkFiniteDifferences(t, m, b, grads, nil, fmt.Sprintf("recompute %v tied %v", rc, tied))
		}
	}
}

// TestCompactGradientIsProjectedFullGradient checks SPEC section 5's identity:
// the compressed gradient G = do^T z equals the float64 full gradient times
// P, while the loss and every uncompressed gradient are exact.
func TestCompactGradientIsProjectedFullGradient(t *testing.T) {
	cfg := testConfig()
	b := randomBatch(cfg, 2, 6, 2)
	for _, c := range []struct{ share, head, o bool }{{true, false, false}, {false, false, false}, {true, true, false},
		{true, false, true}, {false, false, true}} {
		share := c.share
		cc := compactOn(share)
		if c.o {
			cc = compactO(share)
		}
		cc.Head = c.head
		beFull, beCA := cpu.New64(2), cpu.New64(2)
		full := newTestModel(t, beFull, cfg, Options{})
		ca := newTestModel(t, beCA, cfg, Options{Compact: cc})
		lossFull, gFull := lossAndGrads(t, full, b)
		lossCA, gCA := lossAndGrads(t, ca, b)
		if math.Abs(lossFull-lossCA) > 1e-12 {
			t.Fatalf("CompAct changed the loss: %v vs %v", lossCA, lossFull)
		}
		compressed := 0
		for _, p := range ca.Params {
			if !p.Compressed() {
				if e := relErr(gCA[p.Name], gFull[p.Name]); e > 1e-12 {
					t.Errorf("share %v: uncompressed %s differs from the full model's gradient: %.3g", share, p.Name, e)
				}
				continue
			}
			compressed++
			rows, n, r := p.W.Shape[0], p.W.Shape[1], p.Group.Rank
			P := make([]float64, n*r)
			projection.Fill(P, n, r, projection.Gaussian, 7, projection.StreamID(p.Layer, p.Group.ID), 0)
			for i, v := range P { // the model's P is Low: bf16 on every backend
				P[i] = float64(gpu.BF16Nearest(float32(v)))
			}
			want := make([]float64, rows*r)
			for i := 0; i < rows; i++ {
				for j := 0; j < r; j++ {
					for k := 0; k < n; k++ {
						want[i*r+j] += gFull[p.Name][i*n+k] * P[k*r+j]
					}
				}
			}
			if e := relErr(gCA[p.Name], want); e > 1e-10 {
				t.Errorf("share %v: %s: G vs dW P rel err %.3g", share, p.Name, e)
			}
		}
		want := 2 * 6
		if c.o {
			want += 2 // o_proj of each layer
		}
		if c.head {
			want++ // lm_head
		}
		if compressed != want {
			t.Errorf("share %v head %v o %v: %d compressed params, want %d", share, c.head, c.o, compressed, want)
		}
	}
}

// TestRecomputePoliciesAgree: recomputation must not change a single bit of
// the float32 loss or gradients, since every recomputed tensor comes from the
// forward's kernels on the forward's inputs: with CompAct (compressed layers
// read z, never x), full rank with a tied head, and a CompAct classifier.
func TestRecomputePoliciesAgree(t *testing.T) {
	cfg := testConfig()
	tied := cfg
	tied.TieEmbeddings = true
	setups := []struct {
		name string
		cfg  Config
		opts Options
		b    batch
	}{
		{"compact", cfg, Options{Compact: compactOn(true)}, randomBatch(cfg, 2, 7, 3)},
		{"compact-per-layer", cfg, Options{Compact: compactOn(false)}, randomBatch(cfg, 2, 7, 3)},
		{"compact-head", cfg, Options{Compact: compactHead()}, randomBatch(cfg, 2, 7, 3)},
		{"compact-o", cfg, Options{Compact: compactO(true)}, randomBatch(cfg, 2, 7, 3)},
		{"compact-o-per-layer", cfg, Options{Compact: compactO(false)}, randomBatch(cfg, 2, 7, 3)},
		{"full-tied", tied, Options{}, randomBatch(cfg, 2, 7, 3)},
		{"compact-classifier", cfg, Options{Compact: compactOn(true), NumLabels: 3}, classBatch(cfg)},
	}
	for _, s := range setups {
		var refLoss float64
		var ref map[string][]float64
		for rc := range Recompute(len(RecomputeNames)) {
			opts := s.opts
			opts.Recompute = rc
			m := newTestModel(t, cpu.New(2), s.cfg, opts)
			loss, g := lossAndGrads(t, m, s.b)
			if ref == nil {
				refLoss, ref = loss, g
				continue
			}
			if loss != refLoss {
				t.Errorf("%s recompute %v: loss %v, policy none gave %v", s.name, rc, loss, refLoss)
			}
			for name, v := range g {
				for i := range v {
					if v[i] != ref[name][i] {
						t.Fatalf("%s recompute %v: %s[%d] = %v, policy none gave %v", s.name, rc, name, i, v[i], ref[name][i])
					}
				}
			}
		}
	}
}

// TestFloat32MatchesFloat64 runs the same model on both CPU precisions.
func TestFloat32MatchesFloat64(t *testing.T) {
	cfg := testConfig()
	b := randomBatch(cfg, 2, 8, 4)
	m64 := newTestModel(t, cpu.New64(2), cfg, Options{Compact: compactOn(true)})
	m32 := newTestModel(t, cpu.New(2), cfg, Options{Compact: compactOn(true)})
	// Same weights: copy the float64 model's (rounded) weights into both.
	for i, p := range m64.Params {
		w, _ := m64.be.Download(p.W)
		m32.be.Upload(m32.Params[i].W, w)
		m64.be.Upload(p.W, w)
	}
	l64, g64 := lossAndGrads(t, m64, b)
	l32, g32 := lossAndGrads(t, m32, b)
	if math.Abs(l64-l32)/l64 > 1e-6 {
		t.Errorf("loss float32 %v vs float64 %v", l32, l64)
	}
	for name := range g64 {
		if e := relErr(g32[name], g64[name]); e > 1e-5 {
			t.Errorf("%s: float32 vs float64 gradient rel err %.3g", name, e)
		}
	}
}

func TestConfigValidateNamesKey(t *testing.T) {
	cases := map[string]func(*Config){
		"model.num_heads":    func(c *Config) { c.Heads = 3 },
		"model.num_kv_heads": func(c *Config) { c.KVHeads = 0 },
		"model.hidden_size":  func(c *Config) { c.Hidden = -1 },
		"model.rms_eps":      func(c *Config) { c.RMSEps = 0 },
	}
	for key, mutate := range cases {
		c := testConfig()
		mutate(&c)
		err := c.Validate()
		if err == nil || !contains(err.Error(), key) {
			t.Errorf("%s: got %v", key, err)
		}
	}
	cc := compactOn(true)
	cc.Rank = 100
	if err := cc.Check(testConfig()); err == nil || !contains(err.Error(), "compact.rank") {
		t.Errorf("rank > width: got %v", err)
	}
	cc = compactOn(true)
	cc.Layers = []string{"q", "o"}
	if err := cc.Check(testConfig()); err == nil || !contains(err.Error(), "compact.layers") {
		t.Errorf("o in layers: got %v", err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// Compressing o_proj keeps no activation: its z is formed in backward from
// the attention output attention keeps anyway, in storage the MLP's
// backward is done with (activations.go), under every recompute policy;
// its gradient becomes (C, r) instead of (C, C).
func TestCompressedOProjKeepsNoActivation(t *testing.T) {
	cfg := testConfig()
	cfg.Hidden, cfg.Intermediate = 128, 256 // arena views are padded to 128 elements: make o_proj's count
	for rc := range Recompute(len(RecomputeNames)) {
		var acts, grads [2]int64
		for i, cc := range []CompactConfig{compactOn(true), compactO(true)} {
			meter := gpu.NewMeter(2, 4)
			m, err := New(meter.Backend(), cfg, Options{Compact: cc, Recompute: rc})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Prepare(4, 8); err != nil {
				t.Fatal(err)
			}
			snap := meter.Memory().Snapshot()
			acts[i], grads[i] = snap.PeakAt[gpu.Activations], snap.PeakAt[gpu.Grads]
		}
		if acts[1] != acts[0] {
			t.Errorf("recompute %v: activations %d bytes with o_proj compressed, %d without", rc, acts[1], acts[0])
		}
		C, r := int64(cfg.Hidden), int64(cfg.Hidden/2) // rank 0.5, fp32 gradients
		if want := int64(cfg.Layers) * (C*C - C*r) * 4; grads[0]-grads[1] != want {
			t.Errorf("recompute %v: gradients %d bytes with o_proj compressed, %d without: want %d less", rc, grads[1], grads[0], want)
		}
	}
}
