package train

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/model"
)

// Fine-tuning: the base directory a run starts from (its config, the
// model section of which comes from the base, is config.LoadFinetune's).

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
		latest, lerr := LatestCheckpoint(filepath.Join(dir, "checkpoints"))
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
	if _, err := os.Stat(filepath.Join(dir, ckptState)); err == nil {
		s, err := ReadTrainerState(dir)
		if err != nil {
			return config.Base{}, err
		}
		b.Run, b.Tokenizer = &s.Config, s.Tokenizer
	}
	return b, nil
}

// loadBase fills m from the base directory's weights.
func loadBase(m *model.Model, dir string, logf func(string, ...any)) error {
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

// Finetune trains from the weights of opts.Base (or, with opts.Resume and a
// checkpoint in opts.Out, from that checkpoint).
func Finetune(ctx context.Context, cfg config.Config, opts RunOptions) error {
	if opts.Base == "" {
		return config.Usagef("--base DIR is required")
	}
	t, err := newTrainer(cfg, opts)
	if err != nil {
		return err
	}
	defer t.close()
	return t.dp.finish(t.adviseDivergence(t.run(ctx)))
}
