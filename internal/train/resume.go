package train

// Checks made before a run resumes: the saved trainer state must be sane
// (a hand-edited or corrupt trainer_state.json is refused, naming the file
// and field, before anything is read or written), and the configuration
// must be the saved run's, except for what may change on purpose.

import (
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// checkState refuses a trainer state that does not belong at dir or to a
// run of cfg.
func checkState(dir string, st TrainerState, cfg Config) error {
	file := filepath.Join(dir, ckptState)
	dirStep, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), "step-"))
	switch {
	case st.Step < 1:
		return Usagef("%s: step = %d: a checkpoint is written after at least one step", file, st.Step)
	case err == nil && dirStep != st.Step:
		return Usagef("%s: step = %d, but the directory is step %d", file, st.Step, dirStep)
	case st.Step > cfg.Train.Steps:
		return Usagef("%s: step = %d is beyond train.steps = %d: raise train.steps (--steps) to train further", file, st.Step, cfg.Train.Steps)
	case st.Tokens < 0:
		return Usagef("%s: tokens = %d: must not be negative", file, st.Tokens)
	case math.IsNaN(st.LR) || math.IsInf(st.LR, 0) || st.LR < 0:
		return Usagef("%s: lr = %g: must be a finite, non-negative number", file, st.LR)
	}
	return nil
}

// resumeFixedKeys may never change on resume: the model and the CompAct
// layout decide the saved tensors' shapes, and the data keys, seq_len and
// seed decide the data stream the saved position refers to.
var resumeFixedPrefixes = []string{"model.", "data.", "finetune."}
var resumeFixedKeys = []string{"train.seq_len", "train.seed", "compact.enabled", "compact.rank", "compact.share", "compact.layers", "compact.head"}

// resumeFreeKeys may change freely: bookkeeping that does not change what
// is computed (and train.steps, to extend a run).
var resumeFreeKeys = []string{"train.device", "train.threads", "train.steps", "train.log_every", "train.eval_every",
	"train.eval_batches", "train.checkpoint_every", "train.keep_checkpoints", "train.loss_chunk", "train.recompute",
	"train.fused_update", "train.zero", "train.overlap_comm", "train.cuda_graph", "train.comm_timeout", "train.on_instability",
	"train.health.window", "train.health.spike", "train.health.rise", "train.health.patience", "train.health.grad_rise",
	"train.health.lr_factor", "train.health.max_rollbacks", "train.sample_every", "train.sample_tokens", "train.tensorboard"}

// resolvedModes replaces the keys whose "auto" (or, in checkpoints older
// than the key, empty) value stands for a concrete choice by that choice, so
// a resume compares what the runs do rather than how they were written.
func resolvedModes(c Config) Config {
	c.Train.Optimizer, c.Train.AdamEps = c.OptimizerName(), c.AdamEpsilon()
	switch {
	case c.Train.Weights == "":
		c.Train.Weights = WeightsMaster
	case c.Train.Weights == WeightsAuto && c.MasterFree():
		c.Train.Weights = WeightsBF16SR
	case c.Train.Weights == WeightsAuto:
		c.Train.Weights = WeightsMaster
	}
	if c.Train.OptimizerState == "" {
		c.Train.OptimizerState = StateFP32
	}
	if c.Finetune.Task == TaskCausal {
		c.Data.SpecialTokens = "" // shards are tokenized already: no effect
	}
	return c
}

// checkResumeConfig compares the saved run's configuration with now. A
// fixed key that differs is an error; any other difference (lr,
// micro_batch, update_gap, ...) is listed and needs allow.
func checkResumeConfig(file string, saved, now Config, allow bool, logf func(string, ...any)) error {
	a, b := flatten(resolvedModes(saved)), flatten(resolvedModes(now))
	var fixed, changed []string
	for k, v := range b {
		if reflect.DeepEqual(a[k], v) || slices.Contains(resumeFreeKeys, k) {
			continue
		}
		d := fmt.Sprintf("%s %v -> %v", k, a[k], v)
		if slices.Contains(resumeFixedKeys, k) || hasAnyPrefix(k, resumeFixedPrefixes) {
			fixed = append(fixed, d)
		} else {
			changed = append(changed, d)
		}
	}
	sort.Strings(fixed)
	sort.Strings(changed)
	if len(fixed) > 0 {
		return Usagef("%s: cannot resume with a different %s (the saved tensors or data position depend on it); use the run's own config or start a new --out",
			file, strings.Join(fixed, ", "))
	}
	if len(changed) == 0 {
		return nil
	}
	if !allow {
		return Usagef("%s: the config differs from the saved run's: %s; pass --allow-config-change to resume with the new values",
			file, strings.Join(changed, ", "))
	}
	logf("resume: config changed on purpose: %s", strings.Join(changed, ", "))
	return nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
