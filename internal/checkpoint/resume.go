package checkpoint

// Resuming a run: which checkpoint it continues from (ResumePoint), the
// checks made before it does (the saved trainer state must be sane: a
// hand-edited or corrupt trainer_state.json is refused, naming the file and
// field, before anything is read or written; and the configuration must be
// the saved run's, except for what may change on purpose), and what a
// resume from an older checkpoint moves aside (Supersede).

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/model"
)

// CheckState refuses a trainer state that does not belong at dir or to a
// run of cfg.
func CheckState(dir string, st TrainerState, cfg config.Config) error {
	file := filepath.Join(dir, StateFile)
	dirStep, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), "step-"))
	switch {
	case st.Step < 1:
		return config.Usagef("%s: step = %d: a checkpoint is written after at least one step", file, st.Step)
	case err == nil && dirStep != st.Step:
		return config.Usagef("%s: step = %d, but the directory is step %d", file, st.Step, dirStep)
	case st.Step > cfg.Train.Steps:
		return config.Usagef("%s: step = %d is beyond train.steps = %d: raise train.steps (--steps) to train further", file, st.Step, cfg.Train.Steps)
	case st.Tokens < 0:
		return config.Usagef("%s: tokens = %d: must not be negative", file, st.Tokens)
	case math.IsNaN(st.LR) || math.IsInf(st.LR, 0) || st.LR < 0:
		return config.Usagef("%s: lr = %g: must be a finite, non-negative number", file, st.LR)
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
func resolvedModes(c config.Config) config.Config {
	c.Train.Optimizer, c.Train.AdamEps = c.OptimizerName(), c.AdamEpsilon()
	switch {
	case c.Train.Weights == "":
		c.Train.Weights = config.WeightsMaster
	case c.Train.Weights == config.WeightsAuto && c.MasterFree():
		c.Train.Weights = config.WeightsBF16SR
	case c.Train.Weights == config.WeightsAuto:
		c.Train.Weights = config.WeightsMaster
	}
	if c.Train.OptimizerState == "" {
		c.Train.OptimizerState = config.StateFP32
	}
	if c.Train.GradAccumState == "" {
		c.Train.GradAccumState = config.StateFP32
	}
	if c.Finetune.Task == config.TaskCausal {
		c.Data.SpecialTokens = "" // shards are tokenized already: no effect
	}
	return c
}

// CheckResumeConfig compares the saved run's configuration with now. A
// fixed key that differs is an error; any other difference (lr,
// micro_batch, update_gap, ...) is listed and needs allow.
func CheckResumeConfig(file string, saved, now config.Config, allow bool, logf func(string, ...any)) error {
	a, b := resolvedModes(saved).Values(), resolvedModes(now).Values()
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
		return config.Usagef("%s: cannot resume with a different %s (the saved tensors or data position depend on it); use the run's own config or start a new --out",
			file, strings.Join(fixed, ", "))
	}
	if len(changed) == 0 {
		return nil
	}
	if !allow {
		return config.Usagef("%s: the config differs from the saved run's: %s; pass --allow-config-change to resume with the new values",
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

// resumeFiles are what resuming a checkpoint reads: its weights, its Adam
// moments (not with --weights-only) and its trainer state.
func resumeFiles(weightsOnly bool) []string {
	if weightsOnly {
		return []string{ModelFile, StateFile}
	}
	return []string{ModelFile, OptimizerFile, StateFile}
}

// ResumePoint returns the checkpoint a resumed run continues from: from
// (--resume PATH: a step directory, or a run directory's newest), else the
// newest under root, or "" when root holds none at all (a first `make
// run`). A checkpoint that lacks a file the resume reads is refused, naming
// the file and the ways on, before anything is written: taking an older one
// silently would redo, and then replace, the newer checkpoints.
func ResumePoint(root, from string, weightsOnly bool) (string, error) {
	dir := from
	if from != "" {
		var err error
		if dir, err = chosenCheckpoint(from); err != nil {
			return "", config.Usagef("--resume %s: %w", from, err)
		}
	} else {
		all, err := stepDirs(root)
		if err != nil || len(all) == 0 {
			return "", err
		}
		dir = all[len(all)-1].path
	}
	missing := missingFiles(dir, resumeFiles(weightsOnly))
	if len(missing) == 0 {
		return dir, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "resume: checkpoint %s lacks %s, so it cannot be resumed as it is (nothing was changed)", dir, strings.Join(missing, " and "))
	if !slices.Contains(missing, ModelFile) && !slices.Contains(missing, StateFile) {
		b.WriteString("; continue from its weights, step and data position with fresh Adam moments: add --weights-only")
	} else if !slices.Contains(missing, ModelFile) {
		fmt.Fprintf(&b, "; start a new run from its weights: compact finetune --base %s --out NEW", dir)
	}
	if cks, _ := list(filepath.Dir(dir)); len(cks) > 0 && cks[len(cks)-1] != dir {
		fmt.Fprintf(&b, "; or continue from the newest complete checkpoint: --resume %s", cks[len(cks)-1])
	}
	return "", config.Usagef("%s", b.String())
}

// chosenCheckpoint resolves --resume PATH: a checkpoint directory as it is,
// a run directory to its newest step directory.
func chosenCheckpoint(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return "", fmt.Errorf("not a directory (want a checkpoints/step-N directory or a run directory)")
	}
	if len(missingFiles(path, []string{StateFile, ModelFile})) < 2 {
		return path, nil
	}
	all, err := stepDirs(filepath.Join(path, "checkpoints"))
	if err != nil {
		return "", err
	}
	if len(all) == 0 {
		return "", fmt.Errorf("neither a checkpoint (no %s) nor a run directory with checkpoints/step-N", StateFile)
	}
	return all[len(all)-1].path, nil
}

// CheckTensorFiles validates the headers and sizes of a checkpoint's
// safetensors files without reading the tensors: a finished run that is
// resumed trains nothing, but a damaged last checkpoint is still reported.
func CheckTensorFiles(dir string, weightsOnly bool) error {
	for _, name := range resumeFiles(weightsOnly) {
		if !strings.HasSuffix(name, ".safetensors") {
			continue
		}
		f, err := model.OpenSafetensors(filepath.Join(dir, name))
		if err != nil {
			return &config.UsageError{Err: fmt.Errorf("resume: %w", err)}
		}
		f.Close()
	}
	return nil
}

// Supersede moves aside what a resume from an older checkpoint (at step)
// would otherwise replace in the run directory out: the later step
// directories, and metrics.jsonl as it was, go to
// out/superseded-TIMESTAMP/. Nothing is deleted; logf says what moved.
func Supersede(out string, step int, logf func(string, ...any)) error {
	all, err := stepDirs(filepath.Join(out, "checkpoints"))
	if err != nil {
		return err
	}
	var later []stepDir
	for _, d := range all {
		if d.step > step {
			later = append(later, d)
		}
	}
	if len(later) == 0 {
		return nil
	}
	base := filepath.Join(out, "superseded-"+time.Now().Format("20060102-150405"))
	aside := base
	for i := 2; !isAbsent(aside); i++ {
		aside = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.MkdirAll(filepath.Join(aside, "checkpoints"), 0o755); err != nil {
		return err
	}
	var names []string
	for _, d := range later {
		if err := os.Rename(d.path, filepath.Join(aside, "checkpoints", filepath.Base(d.path))); err != nil {
			return fmt.Errorf("resume: moving %s aside: %w", d.path, err)
		}
		names = append(names, filepath.Base(d.path))
	}
	metrics := filepath.Join(out, "metrics.jsonl")
	if raw, err := os.ReadFile(metrics); err == nil {
		if err := os.WriteFile(filepath.Join(aside, "metrics.jsonl"), raw, 0o644); err != nil {
			return err
		}
	}
	logf("resume from step %d: the later checkpoints (%s) and metrics.jsonl as it was are moved to %s; nothing is deleted",
		step, strings.Join(names, ", "), aside)
	return nil
}

func isAbsent(path string) bool {
	_, err := os.Lstat(path)
	return errors.Is(err, os.ErrNotExist)
}
