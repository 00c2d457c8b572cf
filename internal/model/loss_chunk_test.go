package model

import (
	"fmt"
	"math"
	"testing"

	"github.com/compact-llm/compact/internal/gpu/cpu"
)

// The fused LM head + cross-entropy in several chunks (sizes that do and do
// not divide the tokens) must give the loss and every gradient of one chunk:
// each chunk's rows of h, logits, targets and dh, and the LM head gradient
// accumulated over all chunks. Tied and untied heads, CompAct on and off.
func TestLossChunksMatchOneChunk(t *testing.T) {
	cfg := testConfig()
	b := randomBatch(cfg, 3, 7, 5) // 21 tokens
	for _, tied := range []bool{false, true} {
		for _, opts := range []Options{{}, {Compact: compactOn(true)}} {
			c := cfg
			c.TieEmbeddings = tied
			one := opts
			one.LossChunk = 0 // a single chunk here
			l1, g1 := lossAndGrads(t, newTestModel(t, cpu.New64(2), c, one), b)
			for _, chunk := range []int{1, 5, 7, 20} {
				o := opts
				o.LossChunk = chunk
				name := fmt.Sprintf("tied %v compact %v chunk %d", tied, opts.Compact.Enabled, chunk)
				m := newTestModel(t, cpu.New64(2), c, o)
				if got := m.lossChunk(b.B * b.T); got != chunk {
					t.Fatalf("%s: model uses chunks of %d", name, got)
				}
				l, g := lossAndGrads(t, m, b)
				if math.Abs(l-l1) > 1e-12*math.Abs(l1) {
					t.Errorf("%s: loss %.15g, one chunk %.15g", name, l, l1)
				}
				for _, p := range m.Params {
					if e := relErr(g[p.Name], g1[p.Name]); e > 1e-12 {
						t.Errorf("%s: %s gradient differs from one chunk's by %.3g", name, p.Name, e)
					}
				}
			}
		}
	}
}
