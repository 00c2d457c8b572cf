package model

import (
	"math"
	"testing"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
)

// TestKVCacheDecodeMatchesForward feeds tokens one at a time through the KV
// cache and checks every step's logits against a full forward's logits at
// the same position (float64, GQA, tied and untied heads).
func TestKVCacheDecodeMatchesForward(t *testing.T) {
	cfg := testConfig()
	for _, tied := range []bool{false, true} {
		c := cfg
		c.TieEmbeddings = tied
		be := cpu.New64(2)
		m := newTestModel(t, be, c, Options{})
		const B, T = 2, 7
		b := randomBatch(c, B, T, 5)
		if err := m.SetBatch(b.in, nil, B, T); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Forward(false, 0); err != nil {
			t.Fatal(err)
		}
		logits, _ := be.Alloc("logits", gpu.Workspace, gpu.Full, B*T, c.VocabSize)
		be.Gemm(logits, m.acts.h, m.lmHead.W, false, true, 1, 0)
		full, _ := be.DownloadF64(logits)
		cache, err := m.NewKVCache(B, T)
		if err != nil {
			t.Fatal(err)
		}
		V := c.VocabSize
		for pos := 0; pos < T; pos++ {
			got, err := cache.Step([]int32{b.in[pos], b.in[T+pos]})
			if err != nil {
				t.Fatal(err)
			}
			for s := 0; s < B; s++ {
				want := full[(s*T+pos)*V:][:V]
				for j := 0; j < V; j++ {
					if d := math.Abs(got[s*V+j] - want[j]); d > 1e-9 {
						t.Fatalf("tied %v: sequence %d position %d logit %d: decode %.12g, forward %.12g", tied, s, pos, j, got[s*V+j], want[j])
					}
				}
			}
		}
		if _, err := cache.Step([]int32{1, 2}); err == nil {
			t.Error("a step past the cache's length did not fail")
		}
		cache.Free()
	}
}
