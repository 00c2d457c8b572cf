package train

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/optim"
)

// grapher is a CPU backend that claims step graphs, as CUDA does.
type grapher struct{ *cpu.Backend[float32] }

func (grapher) GraphSupport() error                     { return nil }
func (grapher) BeginGraphStep() error                   { return nil }
func (grapher) EndGraphStep(bool) (gpu.GraphRun, error) { return gpu.GraphEager, nil }

// A setting with nothing to act on in a run is a notice naming it and what
// runs instead; settings that apply, or that only mean something elsewhere,
// are quiet.
func TestRunNotices(t *testing.T) {
	cfg := config.Default()
	cfg.Train.GradClip = 0
	be := cpu.New(1)
	cases := []struct {
		name  string
		edit  func(*config.Config)
		be    gpu.Backend
		world int
		want  string // "" : no notice
	}{
		{"plain run", func(*config.Config) {}, be, 1, ""},
		{"unfused data parallel", func(*config.Config) {}, be, 2, "train.overlap_comm"},
		{"fused data parallel", func(c *config.Config) { c.Train.FusedUpdate = true }, be, 2, ""},
		{"graphs with an fp32 master", func(c *config.Config) { c.Compact.Enabled = false }, grapher{be}, 1, "train.cuda_graph = auto"},
		{"graphs master-free", func(*config.Config) {}, grapher{be}, 1, ""},
		{"graphs off", func(c *config.Config) { c.Compact.Enabled, c.Train.CUDAGraph = false, config.GraphOff }, grapher{be}, 1, ""},
		{"classifier loss chunk", func(c *config.Config) { c.Finetune.Task, c.Train.LossChunk = config.TaskClassify, 4096 }, be, 1, "train.loss_chunk"},
		{"bf16 sums without accumulation", func(c *config.Config) { c.Train.GradAccumState = config.StateBF16 }, be, 1, "train.grad_accum_state"},
		{"bf16 sums with accumulation", func(c *config.Config) { c.Train.GradAccumState, c.Train.GradAccum = config.StateBF16, 4 }, be, 1, ""},
	}
	for _, c := range cases {
		cf := cfg
		c.edit(&cf)
		got := runNotices(cf, c.be, c.world)
		if c.want == "" {
			if len(got) != 0 {
				t.Errorf("%s: notices %q, want none", c.name, got)
			}
			continue
		}
		if len(got) != 1 || !strings.HasPrefix(got[0], c.want) {
			t.Errorf("%s: notices %q, want one about %s", c.name, got, c.want)
		}
	}
}

// A run records its notices in every checkpoint's trainer_state.json.
func TestNoticesAreRecorded(t *testing.T) {
	dir := t.TempDir()
	cfg := dpConfig(t, dir, true)
	cfg.Train.Steps, cfg.Train.CheckpointEvery = 2, 2
	out := filepath.Join(dir, "job")
	runRanks(t, 2, perRank(cfg, 2, false), out, false)
	var st checkpoint.TrainerState
	if err := json.Unmarshal(readFile(t, filepath.Join(checkpoint.StepDir(filepath.Join(out, "checkpoints"), 2), checkpoint.StateFile)), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Notices) != 1 || !strings.Contains(st.Notices[0], "train.overlap_comm") {
		t.Errorf("trainer_state notices %q, want the overlap_comm notice", st.Notices)
	}
}

// bf16 gradient sums in a data-parallel job are refused before any work,
// naming the key and what to set (the ranks' sums would be reduced in
// bf16, rounded as the collective rounds them).
func TestBF16SumsRefusedDataParallel(t *testing.T) {
	cfg := leanConfig(true)
	cfg.Train.GradAccum, cfg.Train.GradAccumState = 2, config.StateBF16
	_, err := newRankModel(cpu.New(1), cfg, optim.Shard{}, 2)
	if err == nil || !config.IsUsage(err) || !strings.Contains(err.Error(), "train.grad_accum_state") {
		t.Errorf("bf16 sums in a job of 2 ranks: %v, want a usage error naming train.grad_accum_state", err)
	}
	if _, err := newRankModel(cpu.New(1), cfg, optim.Shard{}, 1); err != nil {
		t.Errorf("bf16 sums on one rank: %v", err)
	}
}
