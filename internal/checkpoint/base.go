package checkpoint

// The base directory a fine-tune starts from, or eval and sample read: a
// HuggingFace LLaMA directory, one of our checkpoints, or a run directory
// (its newest checkpoint). Its config.json gives the model section of the
// run's config (config.LoadFinetune, config.LoadForCheckpoint).

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/model"
)

// ResolveBase accepts a model directory (config.json + model.safetensors or
// a sharded index), one of our checkpoints/step-N directories, or a run
// directory (--out of pretrain/finetune), whose newest checkpoint is taken.
func ResolveBase(dir string) (config.Base, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return config.Base{}, err
	}
	if !st.IsDir() {
		return config.Base{}, fmt.Errorf("%s is not a directory", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, model.ConfigFile)); os.IsNotExist(err) {
		latest, lerr := Latest(filepath.Join(dir, "checkpoints"))
		if lerr != nil {
			return config.Base{}, lerr
		}
		if latest == "" {
			return config.Base{}, fmt.Errorf("%s has no config.json and no complete checkpoint under checkpoints/", dir)
		}
		dir = latest
	}
	cfg, hf, err := model.ReadHFConfigFull(filepath.Join(dir, model.ConfigFile))
	if err != nil {
		return config.Base{}, err
	}
	b := config.Base{Dir: dir, Model: cfg, HF: hf}
	if _, err := os.Stat(filepath.Join(dir, StateFile)); err == nil {
		s, err := ReadState(dir)
		if err != nil {
			return config.Base{}, err
		}
		b.Run, b.Tokenizer = &s.Config, s.Tokenizer
	}
	return b, nil
}

// LoadBase fills m from the weights of the base directory dir (resolved
// as ResolveBase does); logf names the tensors the base lacks, which keep
// their initialisation.
func LoadBase(m *model.Model, dir string, logf func(string, ...any)) error {
	b, err := ResolveBase(dir)
	if err != nil {
		return err
	}
	src, err := model.OpenWeights(b.Dir)
	if err != nil {
		return err
	}
	defer src.Close()
	init, err := m.LoadBase(src)
	if err != nil {
		return err
	}
	logf("base: loaded %s", b.Dir)
	for _, n := range init {
		logf("base: %s is not in the base; initialised from N(0, %g^2)", n, m.Cfg.InitStd)
	}
	return nil
}
