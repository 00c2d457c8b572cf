package train

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/dist"
)

// runRanks trains cfg on n ranks of one job, each a goroutine with its own
// CPU backend, meeting over TCP on 127.0.0.1.
func runRanks(t *testing.T, n int, cfg config.Config, out string, resume bool) {
	t.Helper()
	if err := dist.InProcess(n, func(env dist.Env) error {
		return Pretrain(context.Background(), cfg, RunOptions{Out: out, Resume: resume, Dist: &env})
	}); err != nil {
		t.Fatal(err)
	}
}

// closeTrajectory compares two metric logs up to float32 summation order.
func closeTrajectory(t *testing.T, what string, a, b []Metric) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d metric lines vs %d", what, len(a), len(b))
	}
	near := func(x, y float64) bool { return math.Abs(x-y) <= 2e-4*math.Max(1, math.Abs(x)) }
	for i := range a {
		x, y := a[i], b[i]
		if x.Step != y.Step || x.Tokens != y.Tokens || x.LR != y.LR || !near(x.Loss, y.Loss) || !near(x.GradNorm, y.GradNorm) ||
			(x.ValLoss == nil) != (y.ValLoss == nil) || (x.ValLoss != nil && !near(*x.ValLoss, *y.ValLoss)) {
			t.Fatalf("%s: line %d differs:\n%+v\n%+v", what, i, x, y)
		}
	}
}

// dpConfig is smallConfig with no clipping, so that the fused update (which
// cannot clip) is comparable with the unfused reference.
func dpConfig(t *testing.T, dir string, compact bool) config.Config {
	cfg := smallConfig(t, dir)
	cfg.Compact.Enabled = compact
	cfg.Train.GradClip = 0
	return cfg
}

// perRank is cfg for one of world ranks sharing cfg's global batch.
func perRank(cfg config.Config, world int, fused bool) config.Config {
	cfg.Train.GradAccum /= world
	cfg.Train.FusedUpdate = fused
	return cfg
}

func TestDataParallelMatchesGradAccum(t *testing.T) {
	blockBytes := map[bool]CommBytes{}
	for _, compact := range []bool{true, false} {
		dir := t.TempDir()
		cfg := dpConfig(t, dir, compact) // grad_accum 2
		ref := filepath.Join(dir, "one")
		if err := Pretrain(context.Background(), cfg, RunOptions{Out: ref}); err != nil {
			t.Fatal(err)
		}
		for _, fused := range []bool{false, true} {
			what := fmt.Sprintf("compact %v fused %v", compact, fused)
			out := filepath.Join(dir, fmt.Sprintf("two-fused-%v", fused))
			runRanks(t, 2, perRank(cfg, 2, fused), out, false)
			got := readMetrics(t, out)
			closeTrajectory(t, what, readMetrics(t, ref), got)
			c := got[len(got)-1].Comm
			if c == nil || c.Total+c.ReduceScatter == 0 {
				t.Fatalf("%s: no gradient bytes in the metrics", what)
			}
			blockBytes[compact] = *c
			if _, err := os.Stat(filepath.Join(out, "checkpoints")); err != nil {
				t.Errorf("%s: rank 0 wrote no checkpoints: %v", what, err)
			}
		}
	}
	// CompAct all-reduces its compressed block weights in r-space: rank x
	// the bytes the same layers take at full rank; the block weights it
	// leaves uncompressed take what they take in the full-rank run.
	c, f := blockBytes[true], blockBytes[false]
	if f.BlockCompressed != 0 || c.BlockCompressed == 0 {
		t.Fatalf("block bytes misfiled: compact %+v, full rank %+v", c, f)
	}
	rank := config.Default().Compact.Rank
	if ratio := float64(c.BlockCompressed) / float64(f.BlockFull-c.BlockFull); math.Abs(ratio-rank) > 0.02 {
		t.Errorf("CompAct's compressed layers all-reduce %.3f of their full-rank bytes, want about the rank %g", ratio, rank)
	}
	t.Logf("block weights all-reduced per step: CompAct %d bytes, full rank %d (%.2fx)",
		c.BlockCompressed+c.BlockFull, f.BlockFull, float64(c.BlockCompressed+c.BlockFull)/float64(f.BlockFull))
}

// TestCheckpointResumesOnAnotherWorld: a run checkpointed by 2 ranks
// continues on 1 (with twice the accumulation) and the other way round,
// along the same trajectory as the uninterrupted run.
func TestCheckpointResumesOnAnotherWorld(t *testing.T) {
	dir := t.TempDir()
	cfg := dpConfig(t, dir, true)
	for _, c := range []struct{ before, after int }{{2, 1}, {1, 2}} {
		what := fmt.Sprintf("%d ranks then %d", c.before, c.after)
		full := filepath.Join(dir, fmt.Sprintf("full-%d", c.before))
		train := func(world int, out string, resume bool) {
			if world == 1 {
				if err := Pretrain(context.Background(), cfg, RunOptions{Out: out, Resume: resume}); err != nil {
					t.Fatal(err)
				}
				return
			}
			runRanks(t, world, perRank(cfg, world, false), out, resume)
		}
		train(c.before, full, false)
		cut := filepath.Join(dir, fmt.Sprintf("cut-%d", c.before))
		if err := os.CopyFS(cut, os.DirFS(full)); err != nil {
			t.Fatal(err)
		}
		for _, s := range []int{8, 12} { // resume from step 4
			os.RemoveAll(checkpoint.StepDir(filepath.Join(cut, "checkpoints"), s))
		}
		train(c.after, cut, true)
		closeTrajectory(t, what, readMetrics(t, full), readMetrics(t, cut))
	}
}

// What ranks must agree on: every key but the host's own (threads, the
// stall limit, the device name), and the data by content: a copy of the
// same shard at another path agrees, another shard under the same name
// does not; the checkpoint resumed from counts too.
func TestJobIdentity(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig(t, dir)
	shard := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	big := make([]byte, 200<<10)
	for i := range big {
		big[i] = byte(i * 7)
	}
	a := shard("a/train_000.bin", big)
	b := shard("b/train_000.bin", big)
	changed := append([]byte{}, big...)
	changed[len(changed)-1]++ // in the tail
	c := shard("c/train_000.bin", changed)
	base := jobIdentity(cfg, []string{a}, nil, "")
	other := cfg
	other.Train.Threads, other.Train.CommTimeout, other.Train.Device = 7, 5, "cpu"
	if got := jobIdentity(other, []string{b}, nil, ""); !maps.Equal(got, base) {
		t.Errorf("host settings or a copy of the data at another path changed the identity:\n%v\n%v", got, base)
	}
	if got := jobIdentity(cfg, []string{c}, nil, ""); got["data.train"] == base["data.train"] {
		t.Errorf("a shard with other contents has the same identity %q", got["data.train"])
	}
	other = cfg
	other.Train.LR *= 2
	if got := jobIdentity(other, []string{a}, nil, ""); got["train.lr"] == base["train.lr"] {
		t.Errorf("train.lr not in the identity")
	}
	if got := jobIdentity(cfg, []string{a}, nil, "/x/checkpoints/step-0000006"); got["resume"] != "step-0000006" || base["resume"] != "none" {
		t.Errorf("resume: %q and %q", got["resume"], base["resume"])
	}
}
