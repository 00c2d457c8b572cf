package optim

import (
	"math"
	"testing"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/model"
)

// smallModel is a one-block CompAct model with master-free weights on the
// CPU, laid out as CUDA lays it out (widths padded to 8), initialised from
// seed 1, with the same deterministic gradient in every param.
func smallModel(t *testing.T) *model.Model {
	return smallModelOn(t, cpu.New(1), model.Options{})
}

// smallModelOn is smallModel on be, with opts' gradient accumulation.
func smallModelOn(t *testing.T, be gpu.Backend, opts model.Options) *model.Model {
	t.Helper()
	cfg := model.Config{VocabSize: 100, Hidden: 64, Intermediate: 160, Layers: 1, Heads: 4, KVHeads: 4,
		MaxSeqLen: 16, RopeTheta: 10000, RMSEps: 1e-6, InitStd: 0.02}
	opts.Compact = model.CompactConfig{Enabled: true, Rank: 0.25, Layers: model.DefaultLayers, Share: true,
		Projection: "gaussian", UpdateGap: 50, Alpha: 0.25, OProjScale: 1, Seed: 7, Eps: 1e-6}
	opts.MasterFree, opts.PadIntermediate = true, 8
	m, err := model.New(be, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Init(1); err != nil {
		t.Fatal(err)
	}
	for i, p := range m.Params {
		data, _, err := m.ReadParam(p, p.Grad)
		if err != nil {
			t.Fatal(err)
		}
		for j := range data {
			data[j] = float32(0.05 * math.Sin(float64(7*i+j)))
		}
		if err := m.WriteParam(p, p.Grad, data); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// The rounded compressed update goes a block of rows at a time; with 8-bit
// moments the blocks of rows cover whole 128-element blocks of moments, so
// however small the chunk, the step is the one-chunk step to the bit
// (weights, moments and their scales), for every moment storage.
func TestChunkedUpdateIsWhole(t *testing.T) {
	for _, st := range []State{StateFP32, StateBF16, StateInt8} {
		var weights [2][]float32
		var moments [2][]model.NamedTensor
		for i, chunk := range []int{updateChunk, 700} {
			m := smallModel(t)
			o, err := New(m, Config{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, CompactEps: 1e-6, WeightDecay: 0.1, UpdateGap: 50,
				Form: gpu.AdamHF, Precision: Precision{RoundWeights: true, State: st, Seed: 3}})
			if err != nil {
				t.Fatal(err)
			}
			if chunk != updateChunk {
				o.be.Free(o.dir)
				o.be.Free(o.dBuf)
				o.chunk = chunk
				if err := o.allocUpdate(); err != nil {
					t.Fatal(err)
				}
				for _, p := range m.Params {
					if p.Compressed() && o.chunkRows(p) >= p.W.Shape[0] {
						t.Fatalf("%s: chunk %d still covers all %d rows of %s", st, chunk, p.W.Shape[0], p.Name)
					}
				}
			}
			for range 2 {
				if _, err := o.Update(0.01); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range m.Params {
				w, _, err := m.ReadParam(p, p.W)
				if err != nil {
					t.Fatal(err)
				}
				weights[i] = append(weights[i], w...)
			}
			if moments[i], err = o.Moments(0); err != nil {
				t.Fatal(err)
			}
		}
		for j := range weights[0] {
			if math.Float32bits(weights[0][j]) != math.Float32bits(weights[1][j]) {
				t.Fatalf("%s: weight %d: whole %v, chunked %v", st, j, weights[0][j], weights[1][j])
			}
		}
		for k, mt := range moments[0] {
			for j := range mt.Data {
				if math.Float32bits(mt.Data[j]) != math.Float32bits(moments[1][k].Data[j]) {
					t.Fatalf("%s: %s element %d: whole %v, chunked %v", st, mt.Name, j, mt.Data[j], moments[1][k].Data[j])
				}
			}
		}
	}
}
