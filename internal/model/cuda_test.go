package model

import (
	"fmt"
	"math"
	"testing"

	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/gpu/cuda"
)

// cudaModelOrSkip opens device 0 (closed when t ends), skipping t without
// one, and gives the small model the GPU-vs-CPU tests share.
func cudaModelOrSkip(t *testing.T) (*cuda.Backend, Config) {
	t.Helper()
	g, err := cuda.New(0)
	if err != nil {
		t.Skipf("no usable CUDA device: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	return g, Config{VocabSize: 96, Hidden: 128, Intermediate: 192, Layers: 2, Heads: 2, KVHeads: 1,
		MaxSeqLen: 64, RopeTheta: 10000, RMSEps: 1e-6, InitStd: 0.05}
}

// The whole model on the GPU against the CPU reference with the same
// (bf16-representable) weights: loss and every gradient, CompAct on and off,
// o_proj compressed or not.
func TestCUDAModelMatchesCPU(t *testing.T) {
	g, cfg := cudaModelOrSkip(t)
	b := randomBatch(cfg, 3, 50, 11)
	padded := cfg
	padded.Intermediate = 190 // the GPU engine pads it to 192
	for _, c := range []Config{cfg, padded} {
		testCUDAModelMatchesCPU(t, g, c, b)
	}
}

func testCUDAModelMatchesCPU(t *testing.T, g *cuda.Backend, cfg Config, b batch) {
	// Rank 0.3 (38 of 128, 58 or 57 of the MLP width, the head's too) is
	// stored in 40 and 64 columns on the GPU, unpadded on the CPU.
	odd := compactHead()
	odd.Rank = 0.3
	for _, opts := range []Options{{}, {Compact: compactOn(true)}, {Compact: compactOn(false), Recompute: RecomputeBlock},
		{Compact: compactOn(true), Recompute: RecomputeQKVMLP}, {Compact: odd, Recompute: RecomputeBlock},
		{Compact: compactO(true), Recompute: RecomputeQKVMLP}, {Compact: compactO(false), Recompute: RecomputeBlock}} {
		cpu := newTestModel(t, cpu.New(0), cfg, opts)
		dev, err := New(g, cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range cpu.Params {
			w, _ := cpu.be.Download(p.W)
			for j := range w { // both sides start from bf16 values
				w[j] = float32(bf16(w[j]))
			}
			cpu.be.Upload(p.W, w)
			if err := dev.WriteParam(dev.Params[i], dev.Params[i].updatable(), w); err != nil {
				t.Fatal(err)
			}
		}
		dev.SyncWeights()
		lc, gc := lossAndGrads(t, cpu, b)
		ld, gd := lossAndGrads(t, dev, b)
		if math.Abs(lc-ld)/lc > 1e-2 {
			t.Errorf("%+v: loss GPU %v vs CPU %v", opts.Compact.Enabled, ld, lc)
		}
		for _, p := range cpu.Params {
			if e := relErr(gd[p.Name], gc[p.Name]); e > 5e-2 {
				t.Errorf("compact %v recompute %v: %s gradient GPU vs CPU rel err %.3g", opts.Compact.Enabled, opts.Recompute, p.Name, e)
			}
		}
		dev.Free()
	}
}

// The fused LM head + cross-entropy on the GPU in several chunks against
// one chunk on the GPU and against the CPU, with the same bf16 weights: the
// CUDA half of TestLossChunksMatchOneChunk.
func TestCUDALossChunksMatchOneChunk(t *testing.T) {
	g, cfg := cudaModelOrSkip(t)
	b := randomBatch(cfg, 3, 50, 13) // 150 tokens
	for _, tied := range []bool{false, true} {
		c := cfg
		c.TieEmbeddings = tied
		cpu := newTestModel(t, cpu.New(0), c, Options{})
		var weights [][]float32
		for _, p := range cpu.Params {
			w, _ := cpu.be.Download(p.W)
			for j := range w { // both sides start from bf16 values
				w[j] = float32(bf16(w[j]))
			}
			cpu.be.Upload(p.W, w)
			weights = append(weights, w)
		}
		lc, gc := lossAndGrads(t, cpu, b)
		device := func(chunk int) (float64, map[string][]float64) {
			dev, err := New(g, c, Options{LossChunk: chunk})
			if err != nil {
				t.Fatal(err)
			}
			defer dev.Free()
			for i, p := range dev.Params {
				if err := dev.WriteParam(p, p.updatable(), weights[i]); err != nil {
					t.Fatal(err)
				}
			}
			dev.SyncWeights()
			return lossAndGrads(t, dev, b)
		}
		l1, g1 := device(0)
		for _, chunk := range []int{7, 64} {
			l, gr := device(chunk)
			name := fmt.Sprintf("tied %v chunk %d", tied, chunk)
			if math.Abs(l-l1)/l1 > 2e-3 || math.Abs(l-lc)/lc > 1e-2 {
				t.Errorf("%s: loss %v, one chunk %v, CPU %v", name, l, l1, lc)
			}
			for _, p := range cpu.Params {
				if e := relErr(gr[p.Name], g1[p.Name]); e > 2e-2 {
					t.Errorf("%s: %s gradient vs one GPU chunk rel err %.3g", name, p.Name, e)
				}
				if e := relErr(gr[p.Name], gc[p.Name]); e > 5e-2 {
					t.Errorf("%s: %s gradient vs CPU rel err %.3g", name, p.Name, e)
				}
			}
		}
	}
}

// bf16 rounds to the nearest bf16 value (ties to even).
func bf16(v float32) float32 {
	b := math.Float32bits(v)
	b += 0x7fff + (b>>16)&1
	return math.Float32frombits(b &^ 0xffff)
}

// KV-cache decoding on the GPU against the CPU with the same bf16 weights.
func TestCUDAKVCacheMatchesCPU(t *testing.T) {
	g, cfg := cudaModelOrSkip(t)
	cpu := newTestModel(t, cpu.New(0), cfg, Options{})
	dev, err := New(g, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Free()
	for i, p := range cpu.Params {
		w, _ := cpu.be.Download(p.W)
		for j := range w {
			w[j] = bf16(w[j])
		}
		cpu.be.Upload(p.W, w)
		dev.WriteParam(dev.Params[i], dev.Params[i].updatable(), w)
	}
	dev.SyncWeights()
	cc, err := cpu.NewKVCache(2, 20)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := dev.NewKVCache(2, 20)
	if err != nil {
		t.Fatal(err)
	}
	b := randomBatch(cfg, 2, 20, 9)
	for pos := 0; pos < 20; pos++ {
		toks := []int32{b.in[pos], b.in[20+pos]}
		want, err := cc.Step(toks)
		if err != nil {
			t.Fatal(err)
		}
		got, err := gc.Step(toks)
		if err != nil {
			t.Fatal(err)
		}
		if e := relErr(got, want); e > 3e-2 {
			t.Errorf("position %d: GPU decode logits vs CPU rel err %.3g", pos, e)
		}
	}
}
