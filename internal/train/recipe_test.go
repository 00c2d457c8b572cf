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

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
)

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
	}{{true, 3e-3, config.OptimizerHF}, {false, 1e-3, config.OptimizerTorch}} {
		cfg, err := config.Load("../../configs/llama-60m.yaml", append(sets, fmt.Sprintf("compact.enabled=%v", mode.enabled)))
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
		ckpt, err := checkpoint.Latest(filepath.Join(out, "checkpoints"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := checkpoint.ReadState(ckpt)
		if err != nil || st.Optimizer != mode.opt {
			t.Fatalf("compact %v: trainer state records optimizer %q (%v), want %s", mode.enabled, st.Optimizer, err, mode.opt)
		}
		other := config.OptimizerTorch
		if mode.opt == config.OptimizerTorch {
			other = config.OptimizerHF
		}
		cfg.Train.Optimizer, cfg.Train.Steps = other, 6
		err = Pretrain(context.Background(), cfg, RunOptions{Out: out, Resume: true})
		if err == nil || !config.IsUsage(err) || !strings.Contains(err.Error(), "train.optimizer") {
			t.Errorf("compact %v: resume with optimizer %s: %v, want a usage error naming train.optimizer", mode.enabled, other, err)
		}
		// A checkpoint from before train.optimizer existed trained with
		// torch's form: it resumes into the full-rank recipe, not CompAct's.
		stripOptimizer(t, filepath.Join(ckpt, "trainer_state.json"))
		if st, err := checkpoint.ReadState(ckpt); err != nil || st.Optimizer != config.OptimizerTorch || st.Config.Validate() != nil ||
			st.Config.Train.Weights != config.WeightsMaster || st.Config.Train.OptimizerState != config.StateFP32 ||
			st.Config.Train.CUDAGraph != config.GraphOff {
			t.Fatalf("old trainer state: optimizer %q, %v, config %v", st.Optimizer, err, st.Config.Validate())
		}
		cfg.Train.Optimizer = config.OptimizerAuto
		err = Pretrain(context.Background(), cfg, RunOptions{Out: out, Resume: true})
		if mode.enabled && (err == nil || !config.IsUsage(err)) {
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
	var full checkpoint.TrainerState
	if err := json.Unmarshal(raw, &full); err != nil {
		t.Fatal(err)
	}
	full.Config.Train.Optimizer, full.Config.Train.Weights, full.Config.Train.OptimizerState = "", "", ""
	full.Config.Train.CUDAGraph = "" // and train.cuda_graph
	type goFields config.Config      // the older form: Go field names, config.json keys for the model
	st["config"] = goFields(full.Config)
	raw, _ = json.Marshal(st)
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}
