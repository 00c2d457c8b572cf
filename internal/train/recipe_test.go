package train

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The shipped pretraining configs resolve to the paper's two recipes from
// one file: CompAct at compact.lr with the HF form, full rank at train.lr
// with torch's, neither clipping.
func TestShippedRecipes(t *testing.T) {
	for _, c := range []struct {
		file      string
		compactLR float64
	}{{"llama-60m", 1e-2}, {"llama-130m", 1e-2}, {"llama-350m", 1e-2}, {"llama-1b", 3e-3}} {
		file := filepath.Join("../../configs", c.file+".yaml")
		for _, mode := range []struct {
			set     []string
			lr, eps float64
			opt     string
		}{{nil, c.compactLR, 1e-6, OptimizerHF}, {[]string{"compact.enabled=false"}, 1e-3, 1e-8, OptimizerTorch}} {
			cfg, err := Load(file, mode.set)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.PeakLR() != mode.lr || cfg.OptimizerName() != mode.opt || cfg.AdamEpsilon() != mode.eps || cfg.Train.GradClip != 0 {
				t.Errorf("%s %v: lr %g, %s, eps %g, grad_clip %g; want lr %g, %s, eps %g, no clipping",
					c.file, mode.set, cfg.PeakLR(), cfg.OptimizerName(), cfg.AdamEpsilon(), cfg.Train.GradClip, mode.lr, mode.opt, mode.eps)
			}
		}
		cfg, _ := Load(file, nil)
		cc := cfg.Compact
		if cc.Rank != 0.5 || cc.UpdateGap != 200 || cc.Alpha*cc.OProjScale != 0.25 || cfg.Train.WarmupRatio != 0.1 || cfg.Train.MinLRRatio != 0.1 {
			t.Errorf("%s: compact %+v, warmup %g, min ratio %g: not the paper's recipe", c.file, cc, cfg.Train.WarmupRatio, cfg.Train.MinLRRatio)
		}
		// What the user sets explicitly wins.
		cfg, _ = Load(file, []string{"compact.lr=0", "train.lr=2e-3", "train.optimizer=adamw_torch", "train.adam_eps=1e-7"})
		if cfg.PeakLR() != 2e-3 || cfg.OptimizerName() != OptimizerTorch || cfg.AdamEpsilon() != 1e-7 {
			t.Errorf("%s: explicit keys ignored: lr %g %s eps %g", c.file, cfg.PeakLR(), cfg.OptimizerName(), cfg.AdamEpsilon())
		}
	}
	// The paper fine-tunes with o_proj's update at scale 1 whatever alpha.
	files, _ := filepath.Glob("../../configs/finetune-*.yaml")
	for _, f := range files {
		cfg, _, err := loadOver(Default(), f, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s := cfg.Compact.Alpha * cfg.Compact.OProjScale; s != 1 {
			t.Errorf("%s: o_proj update scale %g, want 1", f, s)
		}
	}
}

func TestRecipeKeysNameTheCulprit(t *testing.T) {
	for _, c := range []struct {
		set, want string
	}{{"train.optimizer=adam", "train.optimizer"}, {"compact.lr=-1", "compact.lr"}, {"train.adam_eps=-1e-8", "train.adam_eps"},
		{"compact.rank=1", "compact.rank"}} {
		_, err := Load("", []string{c.set})
		if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %s: error %v does not name %s", c.set, err, c.want)
		}
	}
	// rank 1 is only ambiguous while CompAct is on.
	if _, err := Load("", []string{"compact.rank=1", "compact.enabled=false"}); err != nil {
		t.Errorf("rank 1 with CompAct off: %v", err)
	}
}

// A short CPU run of the shipped llama-60m.yaml (model shrunk, data and
// length set) logs the CompAct recipe's learning rate, and the same file
// with compact.enabled=false the full-rank one; the resolved recipe is
// printed and the optimizer form recorded, and a resume that would change
// the form is refused.
func TestOneConfigTwoRecipesRun(t *testing.T) {
	dir := t.TempDir()
	small := smallConfig(t, dir)
	sets := []string{"model.vocab_size=257", "model.hidden_size=32", "model.intermediate_size=64", "model.num_layers=2",
		"model.num_heads=4", "model.num_kv_heads=2", "model.max_seq_len=32", "train.seq_len=32", "train.micro_batch=2",
		"train.grad_accum=1", "train.steps=4", "train.warmup_steps=2", "train.log_every=1", "train.eval_every=0",
		"train.eval_batches=1", "train.checkpoint_every=0", "train.device=cpu", "train.threads=2", "data.tokenizer=byte",
		"data.train=" + small.Data.Train[0], "data.val=" + small.Data.Val[0]}
	for _, mode := range []struct {
		enabled bool
		lr      float64
		opt     string
	}{{true, 1e-2, OptimizerHF}, {false, 1e-3, OptimizerTorch}} {
		cfg, err := Load("../../configs/llama-60m.yaml", append(sets, fmt.Sprintf("compact.enabled=%v", mode.enabled)))
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, fmt.Sprint(mode.enabled))
		var log bytes.Buffer
		if err := Pretrain(context.Background(), cfg, RunOptions{Out: out, Log: &log}); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("lr %g (", mode.lr); !strings.Contains(log.String(), want) || !strings.Contains(log.String(), "optimizer "+mode.opt) {
			t.Errorf("compact %v: the log does not show lr %g and %s:\n%s", mode.enabled, mode.lr, mode.opt, log.String())
		}
		m := readMetrics(t, out)
		if len(m) != 4 || math.Abs(m[1].LR-mode.lr) > 1e-15 || math.Abs(m[0].LR-mode.lr/2) > 1e-15 {
			t.Fatalf("compact %v: metrics lr %v, want warmup to %g at step 2", mode.enabled, m, mode.lr)
		}
		ckpt, err := LatestCheckpoint(filepath.Join(out, "checkpoints"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := ReadTrainerState(ckpt)
		if err != nil || st.Optimizer != mode.opt {
			t.Fatalf("compact %v: trainer state records optimizer %q (%v), want %s", mode.enabled, st.Optimizer, err, mode.opt)
		}
		other := OptimizerTorch
		if mode.opt == OptimizerTorch {
			other = OptimizerHF
		}
		cfg.Train.Optimizer, cfg.Train.Steps = other, 6
		err = Pretrain(context.Background(), cfg, RunOptions{Out: out, Resume: true})
		if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), "train.optimizer") {
			t.Errorf("compact %v: resume with optimizer %s: %v, want a usage error naming train.optimizer", mode.enabled, other, err)
		}
		// A checkpoint from before train.optimizer existed trained with
		// torch's form: it resumes into the full-rank recipe, not CompAct's.
		stripOptimizer(t, filepath.Join(ckpt, "trainer_state.json"))
		if st, err := ReadTrainerState(ckpt); err != nil || st.Optimizer != OptimizerTorch || st.Config.Validate() != nil ||
			st.Config.Train.Weights != WeightsMaster || st.Config.Train.OptimizerState != StateFP32 ||
			st.Config.Train.CUDAGraph != GraphOff {
			t.Fatalf("old trainer state: optimizer %q, %v, config %v", st.Optimizer, err, st.Config.Validate())
		}
		cfg.Train.Optimizer = OptimizerAuto
		err = Pretrain(context.Background(), cfg, RunOptions{Out: out, Resume: true})
		if mode.enabled && (err == nil || !IsUsage(err)) {
			t.Errorf("CompAct resume from a torch-form checkpoint: %v, want refused", err)
		}
		if !mode.enabled && err != nil {
			t.Errorf("full-rank resume from a torch-form checkpoint: %v", err)
		}
	}
}

// stripOptimizer removes what trainer_state.json gained with train.optimizer.
func stripOptimizer(t *testing.T, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	delete(st, "optimizer")
	// Such checkpoints also predate the YAML-key form of the saved config.
	var full TrainerState
	if err := json.Unmarshal(raw, &full); err != nil {
		t.Fatal(err)
	}
	full.Config.Train.Optimizer, full.Config.Train.Weights, full.Config.Train.OptimizerState = "", "", ""
	full.Config.Train.CUDAGraph = "" // and train.cuda_graph
	st["config"] = legacyConfig(full.Config)
	raw, _ = json.Marshal(st)
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}
