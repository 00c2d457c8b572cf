// Package checkpoint holds a run's directory and what a run saves in it:
// the --out directory, claimed and locked for one run (rundir.go); the
// checkpoints under its checkpoints/, step directories written atomically
// (checkpoint.go) and listed, pruned or set aside (dirs.go); the trainer
// state each one carries (state.go); the checks and choices of a resume
// (resume.go); the tokenizer a checkpoint carries (tokenizer.go); and the
// base directory a fine-tune or an evaluation starts from (base.go). Files
// are written without following links out of the directory (files.go).
package checkpoint

// Checkpoints: checkpoints/step-NNNNNNN/ holds config.json and
// model.safetensors in HuggingFace LLaMA layout (transformers loads the
// directory as it is), optimizer.safetensors with every Adam moment
// (compressed ones at their (rows, r) shape) and trainer_state.json with the
// step, schedule, projection and data-loader position. A checkpoint is
// written into a temporary directory, synced, then renamed, so a crash at
// any moment leaves the previous one intact.

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/optim"
)

// Checkpoint file names inside a step directory.
const (
	configFile    = "config.json" // model.ConfigFile
	ModelFile     = "model.safetensors"
	OptimizerFile = "optimizer.safetensors"
	StateFile     = "trainer_state.json"
)

var ckptFiles = []string{configFile, ModelFile, OptimizerFile, StateFile}

// StepDir names the directory of step under root.
func StepDir(root string, step int) string {
	return filepath.Join(root, fmt.Sprintf("step-%07d", step))
}

// Save writes the checkpoint of st.Step under root, then keeps only the
// newest keep checkpoints. opt must hold the whole state (not a ZeRO-1
// shard: see SaveTensors).
func Save(root string, m *model.Model, opt *optim.Optimizer, st TrainerState, eos int, keep int) (string, error) {
	if opt.Sharded() {
		return "", fmt.Errorf("checkpoint: the optimizer holds a ZeRO-1 share of the state; every rank must gather it (Optimizer.Moments)")
	}
	moments, err := opt.Moments(0)
	if err != nil {
		return "", err
	}
	weights, err := m.WeightTensors()
	if err != nil {
		return "", err
	}
	return SaveTensors(root, m, weights, moments, opt.MomentDType(), st, eos, keep)
}

// SaveTensors is Save with every weight and moment already on the host
// (gathered from the ranks of a ZeRO-1 job), the moments stored as
// momentDType; extra files (the tokenizer's, TokenizerFiles) go beside
// them. A state with a tensor that is not finite is refused with a
// NonFiniteError before any file is written.
func SaveTensors(root string, m *model.Model, weights, moments []model.NamedTensor, momentDType string, st TrainerState, eos int, keep int, extra ...File) (_ string, err error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	final := StepDir(root, st.Step)
	// A diverged state is never written (nor are good checkpoints pruned
	// for it): every tensor is checked on the host before any file exists.
	for _, set := range [][]model.NamedTensor{weights, moments} {
		for _, t := range set {
			if err := model.CheckFinite(t.Name, t.Data); err != nil {
				return "", &NonFiniteError{Step: st.Step, What: err.Error()}
			}
		}
	}
	tmp := filepath.Join(root, ".tmp-"+filepath.Base(final))
	if err := os.RemoveAll(tmp); err != nil { // leftovers of a crashed write
		return "", err
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return "", err
	}
	defer func() {
		if err != nil && tmp != "" { // a full disk: give the space of the partial checkpoint back now
			os.RemoveAll(tmp)
			err = fmt.Errorf("%w (the partial checkpoint was removed; the earlier ones are intact)", err)
		}
	}()
	st.Version = StateVersion
	steps := []struct {
		name  string
		write func(io.Writer) error
	}{
		{configFile, func(w io.Writer) error {
			h := m.HF(eos)
			h.SetLabels(st.Config.Finetune.Labels) // id2label as transformers shows the classes
			return h.Write(w)
		}},
		{ModelFile, func(w io.Writer) error { return model.WriteSafetensors(w, weights) }},
		{OptimizerFile, func(w io.Writer) error { return model.WriteSafetensorsAs(w, moments, momentDType) }},
		{StateFile, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}},
	}
	for _, f := range extra {
		steps = append(steps, struct {
			name  string
			write func(io.Writer) error
		}{f.Name, func(w io.Writer) error { _, err := w.Write(f.Data); return err }})
	}
	for _, s := range steps {
		path := filepath.Join(tmp, s.name)
		write := func(w io.Writer) error { return s.write(faultDiskFull(st.Step, path, w)) }
		if err := writeSynced(path, write); err != nil {
			return "", err
		}
	}
	if err := syncDir(tmp); err != nil {
		return "", err
	}
	maybeCrash(st.Step)
	// Replace an existing directory of the same step only after the new one
	// is complete: move the old aside, rename, then delete the old.
	old := filepath.Join(root, ".old-"+filepath.Base(final))
	if _, err := os.Stat(final); err == nil {
		os.RemoveAll(old)
		if err := os.Rename(final, old); err != nil {
			return "", err
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	tmp = "" // renamed into place: nothing partial is left to remove
	if err := syncDir(root); err != nil {
		return "", err
	}
	os.RemoveAll(old)
	return final, prune(root, keep)
}

// NonFiniteError refuses to save a state whose weights or moments are not
// finite: a NaN never heals, so no checkpoint of a diverged state is
// written and the good ones are neither replaced nor pruned for it.
type NonFiniteError struct {
	Step int
	What string // the tensor and its bad value
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("checkpoint of step %d: %s", e.Step, e.What)
}

// Load restores weights and, when opt is not nil, the optimizer
// moments of a checkpoint directory into m: those of the params opt owns
// when it is a ZeRO-1 shard (every rank reads the one file).
func Load(dir string, m *model.Model, opt *optim.Optimizer) error {
	w, err := model.OpenSafetensors(filepath.Join(dir, ModelFile))
	if err != nil {
		return err
	}
	defer w.Close()
	if err := m.LoadWeights(w); err != nil {
		return err
	}
	if opt == nil {
		return nil
	}
	o, err := model.OpenSafetensors(filepath.Join(dir, OptimizerFile))
	if err != nil {
		return err
	}
	defer o.Close()
	return opt.LoadMoments(o, dir)
}
