package train

// Checkpoints: checkpoints/step-NNNNNNN/ holds config.json and
// model.safetensors in HuggingFace LLaMA layout (transformers loads the
// directory as it is), optimizer.safetensors with every Adam moment
// (compressed ones at their (rows, r) shape) and trainer_state.json with the
// step, schedule, projection and data-loader position. A checkpoint is
// written into a temporary directory, synced, then renamed, so a crash at
// any moment leaves the previous one intact.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/optim"
)

// StateVersion is bumped when trainer_state.json changes incompatibly.
const StateVersion = 1

// TrainerState is everything besides tensors that a resumed run needs.
type TrainerState struct {
	Version    int             `json:"version"`
	Step       int             `json:"step"`   // optimizer steps completed
	Tokens     int64           `json:"tokens"` // training tokens consumed
	LR         float64         `json:"lr"`     // learning rate of the last step
	Epoch      uint32          `json:"projection_epoch"`
	Loader     json.RawMessage `json:"loader"` // data.LoaderState
	Config     config.Config   `json:"config"`
	Tokenizer  string          `json:"tokenizer"`
	Optimizer  string          `json:"optimizer"` // resolved form, adamw_hf or adamw_torch
	TrainFiles []string        `json:"train_files"`
	ValFiles   []string        `json:"val_files"`
	Base       string          `json:"base,omitempty"`   // fine-tuning: where the weights started
	World      int             `json:"world,omitempty"`  // data-parallel ranks that wrote it (0: one)
	Health     *HealthState    `json:"health,omitempty"` // the training-health guard's memory (health.go)
	// AdamStart is the step after which the Adam moments last started from
	// zero (a --weights-only resume); the bias correction counts from it.
	AdamStart int `json:"adam_start,omitempty"`
	// Schedule records every resume that changed the learning-rate schedule.
	Schedule []ScheduleChange `json:"schedule_changes,omitempty"`
	// Notices are the settings this run could not apply, with what ran
	// instead (applies.go).
	Notices []string `json:"notices,omitempty"`
}

// Checkpoint file names inside a step directory.
const (
	ckptConfig    = "config.json"
	ckptModel     = "model.safetensors"
	ckptOptimizer = "optimizer.safetensors"
	ckptState     = "trainer_state.json"
)

var ckptFiles = []string{ckptConfig, ckptModel, ckptOptimizer, ckptState}

// StepDir names the directory of step under root.
func StepDir(root string, step int) string {
	return filepath.Join(root, fmt.Sprintf("step-%07d", step))
}

// writeSynced creates path, lets write fill it, and fsyncs it.
func writeSynced(path string, write func(io.Writer) error) error {
	f, err := createFresh(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	var pe *os.PathError
	if err != nil && !errors.As(err, &pe) { // a file system error names the file already
		return fmt.Errorf("write %s: %w", path, err)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// SaveCheckpoint writes the checkpoint of st.Step under root, then keeps
// only the newest keep checkpoints. opt must hold the whole state (not a
// ZeRO-1 shard: see saveCheckpoint).
func SaveCheckpoint(root string, m *model.Model, opt *optim.Optimizer, st TrainerState, eos int, keep int) (string, error) {
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
	return saveCheckpoint(root, m, weights, moments, opt.MomentDType(), st, eos, keep)
}

// saveCheckpoint is SaveCheckpoint with every weight and moment already on
// the host (gathered from the ranks of a ZeRO-1 job), the moments stored as
// momentDType.
func saveCheckpoint(root string, m *model.Model, weights, moments []model.NamedTensor, momentDType string, st TrainerState, eos int, keep int, extra ...ckptFile) (_ string, err error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	final := StepDir(root, st.Step)
	// A diverged state is never written (nor are good checkpoints pruned
	// for it): every tensor is checked on the host before any file exists.
	for _, set := range [][]model.NamedTensor{weights, moments} {
		for _, t := range set {
			if err := model.CheckFinite(t.Name, t.Data); err != nil {
				return "", &DivergedError{Step: st.Step, What: err.Error()}
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
		{ckptConfig, func(w io.Writer) error {
			h := m.HF(eos)
			h.SetLabels(st.Config.Finetune.Labels) // id2label as transformers shows the classes
			return h.Write(w)
		}},
		{ckptModel, func(w io.Writer) error { return model.WriteSafetensors(w, weights) }},
		{ckptOptimizer, func(w io.Writer) error { return model.WriteSafetensorsAs(w, moments, momentDType) }},
		{ckptState, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}},
	}
	for _, f := range extra {
		steps = append(steps, struct {
			name  string
			write func(io.Writer) error
		}{f.name, func(w io.Writer) error { _, err := w.Write(f.data); return err }})
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
	return final, pruneCheckpoints(root, keep)
}

// stepDir is a checkpoints/step-N directory, complete or not.
type stepDir struct {
	step int
	path string
}

// stepDirs returns the step directories under root, oldest first.
// Temporary (.tmp-step-N) and replaced (.old-step-N) ones are skipped.
func stepDirs(root string) ([]stepDir, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []stepDir
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, "step-") {
			continue
		}
		step, err := strconv.Atoi(strings.TrimPrefix(name, "step-"))
		if err != nil {
			continue
		}
		out = append(out, stepDir{step, filepath.Join(root, name)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].step < out[j].step })
	return out, nil
}

// missingFiles lists the names among files that dir lacks.
func missingFiles(dir string, files []string) []string {
	var out []string
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			out = append(out, f)
		}
	}
	return out
}

// listCheckpoints returns the complete step directories under root, oldest
// first. Temporary and partial directories are skipped.
func listCheckpoints(root string) ([]string, error) {
	all, err := stepDirs(root)
	var out []string
	for _, d := range all {
		if len(missingFiles(d.path, ckptFiles)) == 0 {
			out = append(out, d.path)
		}
	}
	return out, err
}

func pruneCheckpoints(root string, keep int) error {
	cks, err := listCheckpoints(root)
	if err != nil {
		return err
	}
	for i := 0; i+keep < len(cks); i++ {
		if err := os.RemoveAll(cks[i]); err != nil {
			return err
		}
	}
	return nil
}

// LatestCheckpoint returns the newest complete checkpoint under root, or ""
// when there is none.
func LatestCheckpoint(root string) (string, error) {
	cks, err := listCheckpoints(root)
	if err != nil || len(cks) == 0 {
		return "", err
	}
	return cks[len(cks)-1], nil
}

// ReadTrainerState reads trainer_state.json of a checkpoint directory.
func ReadTrainerState(dir string) (TrainerState, error) {
	var st TrainerState
	raw, err := data.ReadRegular(filepath.Join(dir, ckptState))
	if err != nil {
		return st, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if st.Version != StateVersion {
		return st, fmt.Errorf("checkpoint %s: trainer state version %d, this build reads %d", dir, st.Version, StateVersion)
	}
	// Checkpoints from before train.optimizer existed trained with torch's
	// form, the only one there was.
	if st.Optimizer == "" {
		st.Optimizer = config.OptimizerTorch
	}
	if st.Config.Train.Optimizer == "" {
		st.Config.Train.Optimizer = config.OptimizerTorch
	}
	// ... and with an fp32 master and fp32 moments, likewise.
	if st.Config.Train.Weights == "" {
		st.Config.Train.Weights = config.WeightsMaster
	}
	if st.Config.Train.OptimizerState == "" {
		st.Config.Train.OptimizerState = config.StateFP32
	}
	// ... and read special-token text as text, before data.special_tokens.
	if st.Config.Data.SpecialTokens == "" {
		st.Config.Data.SpecialTokens = data.SpecialText
	}
	// ... and eagerly, before train.cuda_graph existed (free on resume).
	if st.Config.Train.CUDAGraph == "" {
		st.Config.Train.CUDAGraph = config.GraphOff
	}
	return st, nil
}

// LoadCheckpoint restores weights and, when opt is not nil, the optimizer
// moments of a checkpoint directory into m: those of the params opt owns
// when it is a ZeRO-1 shard (every rank reads the one file).
func LoadCheckpoint(dir string, m *model.Model, opt *optim.Optimizer) error {
	w, err := model.OpenSafetensors(filepath.Join(dir, ckptModel))
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
	o, err := model.OpenSafetensors(filepath.Join(dir, ckptOptimizer))
	if err != nil {
		return err
	}
	defer o.Close()
	return opt.LoadMoments(o, dir)
}
