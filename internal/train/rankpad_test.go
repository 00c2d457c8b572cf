package train

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/optim"
)

// rankPadModel builds cfg's model with Options.PadIntermediate = pad and its
// optimizer, as NewModel would but for the padding, which NewModel chooses.
func rankPadModel(t *testing.T, cfg config.Config, pad int) (*model.Model, *optim.Optimizer) {
	t.Helper()
	rc, err := model.ParseRecompute(cfg.Train.Recompute)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cpu.New(2), cfg.Model, model.Options{Compact: cfg.Compact, Recompute: rc,
		FusedUpdate: cfg.Train.FusedUpdate, PadIntermediate: pad})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Free)
	o, err := optim.New(m, cfg.OptimizerConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Free)
	return m, o
}

// sameState fails unless a and b hold the same logical weights and moments,
// bit for bit: the CPU's GEMMs add the padding's zero products in order, so
// they change no sum.
func sameState(t *testing.T, what string, a, b *model.Model, oa, ob *optim.Optimizer) {
	t.Helper()
	for i, p := range a.Params {
		q := b.Params[i]
		for k, x := range [][2]*gpu.Tensor{{p.W, q.W}, {oa.M[i], ob.M[i]}, {oa.V[i], ob.V[i]}} {
			va, vb := mustRead(t, a, p, x[0]), mustRead(t, b, q, x[1])
			if len(va) != len(vb) {
				t.Fatalf("%s: %s tensor %d: %d values vs %d", what, p.Name, k, len(va), len(vb))
			}
			for j := range va {
				if math.Float32bits(va[j]) != math.Float32bits(vb[j]) {
					t.Fatalf("%s: %s tensor %d element %d: %v padded vs %v", what, p.Name, k, j, va[j], vb[j])
				}
			}
		}
	}
}

// Training with CompAct's rank stored padded to 8 (as on CUDA) follows the
// unpadded run: same losses and the same logical weights and moments after
// steps that cross a resampling of P (bit for bit on the CPU), unfused and fused, with the LM head
// compressed and under block recompute. A checkpoint of either loads into
// the other (files hold the logical shapes), and both then step alike.
func TestPaddedRankTrainsAlike(t *testing.T) {
	for _, c := range []struct {
		rc    string
		fused bool
	}{{"none", false}, {"block", true}, {"qkv_mlp", false}} {
		cfg := leanConfig(true)
		cfg.Compact.Rank, cfg.Compact.Head, cfg.Compact.UpdateGap = 5, true, 2 // stored in 8 columns
		cfg.Train.Recompute, cfg.Train.FusedUpdate = c.rc, c.fused
		if c.fused {
			cfg.Train.GradClip = 0
		}
		mp, op := rankPadModel(t, cfg, 8)
		mu, ou := rankPadModel(t, cfg, 1)
		if g := mp.Groups()[0]; g.Rank != 5 || g.Cols != 8 {
			t.Fatalf("padded model stores rank %d in %d columns, want 5 in 8", g.Rank, g.Cols)
		}
		if g := mu.Groups()[0]; g.Cols != 5 {
			t.Fatalf("unpadded model stores rank 5 in %d columns", g.Cols)
		}
		for _, m := range []*model.Model{mp, mu} {
			if err := m.Init(3); err != nil {
				t.Fatal(err)
			}
		}
		rng := rand.New(rand.NewPCG(4, 5))
		B, T := 2, 8
		step := func(what string) {
			in, tg := randomBatch(rng, B*T, cfg.Model.VocabSize)
			lp, gp := trainStep(t, mp, op, in, tg, B, T, 0.01)
			lu, gu := trainStep(t, mu, ou, in, tg, B, T, 0.01)
			if lp != lu || gp != gu {
				t.Fatalf("%s %s: loss %v, grad norm %v padded; %v, %v unpadded", c.rc, what, lp, gp, lu, gu)
			}
			sameState(t, c.rc+" "+what, mp, mu, op, ou)
		}
		for range 3 {
			step("step")
		}

		// Each model's checkpoint loads into the other's engine (which has
		// moved on by a step meanwhile) and saves the same files back.
		dir := t.TempDir()
		save := func(name string, m *model.Model, o *optim.Optimizer) string {
			st := checkpoint.TrainerState{Version: checkpoint.StateVersion, Step: o.Step, Config: cfg}
			d, err := checkpoint.Save(filepath.Join(dir, name), m, o, st, 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		pdir, udir := save("padded", mp, op), save("unpadded", mu, ou)
		step("step")
		if err := checkpoint.Load(udir, mp, op); err != nil {
			t.Fatalf("unpadded checkpoint into the padded engine: %v", err)
		}
		if err := checkpoint.Load(pdir, mu, ou); err != nil {
			t.Fatalf("padded checkpoint into the unpadded engine: %v", err)
		}
		op.Step, ou.Step = op.Step-1, ou.Step-1
		for _, pair := range [][2]string{{udir, save("padded2", mp, op)}, {pdir, save("unpadded2", mu, ou)}} {
			for _, name := range []string{checkpoint.ModelFile, checkpoint.OptimizerFile} {
				a, _ := os.ReadFile(filepath.Join(pair[0], name))
				b, _ := os.ReadFile(filepath.Join(pair[1], name))
				if len(a) == 0 || !bytes.Equal(a, b) {
					t.Errorf("%s: %s of %s loaded and saved again differs", c.rc, name, filepath.Base(filepath.Dir(pair[0])))
				}
			}
		}
		step("after the swap")
	}
}
