package config

// Fine-tuning: the model section of a run comes from the base directory's
// config.json (a HuggingFace LLaMA directory or one of our checkpoints), the
// rest from the config file, COMPACT_* variables and --set as for
// pretraining. A model.* key given explicitly must equal the base's value:
// that lets a pretraining config be reused as it is, and a key that would
// change the architecture is an error instead of being silently dropped.

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/data/examples"
	"github.com/compact-llm/compact/internal/model"
)

// Fine-tuning tasks (finetune.task).
const (
	TaskCausal     = "causal"     // next-token loss on token shards, as pretraining
	TaskCompletion = "completion" // JSONL {"prompt","completion"}: loss on completion tokens only
	TaskClassify   = "classify"   // JSONL {"text","label"}: sequence classification head
)

// Tasks lists the finetune.task values.
var Tasks = []string{TaskCausal, TaskCompletion, TaskClassify}

// FinetuneConfig is what `compact finetune` adds to a run. Pretraining
// ignores it except that it must keep the causal task.
type FinetuneConfig struct {
	Task        string   `mapstructure:"task"`         // one of Tasks
	NumLabels   int      `mapstructure:"num_labels"`   // classify: number of classes
	Labels      []string `mapstructure:"labels"`       // classify: class names in id order (resolveLabels; internal/data/examples/labels.go)
	ValFraction float64  `mapstructure:"val_fraction"` // JSONL tasks without data.val: share of data.train held out
}

// Base is a resolved base directory (checkpoint.ResolveBase): the model
// a fine-tune starts from, or the checkpoint eval and sample read.
type Base struct {
	Dir   string // holds config.json and the weights
	Model model.Config
	HF    model.HFConfig
	// Run is the configuration of the run that wrote the directory, and
	// Tokenizer its tokenizer, when it is a checkpoint of ours (nil and ""
	// for a HuggingFace directory).
	Run       *Config
	Tokenizer string
}

// LoadFinetune builds a fine-tuning run's config: defaults, then the file,
// COMPACT_* variables and overrides, with the model section taken from the
// base. Without an explicit data.tokenizer the base's own is used: its
// tokenizer.json, else the tokenizer of the run that wrote it.
func LoadFinetune(b Base, file string, overrides []string) (Config, error) {
	cfg, explicit, err := loadOver(Default(), file, overrides)
	if err != nil {
		return Config{}, err
	}
	if err := adoptBase(&cfg, explicit, b, source(file)); err != nil {
		return Config{}, err
	}
	if err := resolveLabels(&cfg, source(file)); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, &UsageError{err}
	}
	return cfg, nil
}

// LoadForCheckpoint builds the config to evaluate or sample a checkpoint:
// the run config saved in it (defaults for an HF directory), then the file,
// variables and overrides; the model section always from its config.json.
func LoadForCheckpoint(b Base, file string, overrides []string) (Config, error) {
	start := Default()
	if b.Run != nil {
		start = *b.Run
		// The device is the machine's, not the run's: a checkpoint trained
		// with train.device: cuda must still evaluate on a CPU machine.
		start.Train.Device = Default().Train.Device
	}
	cfg, explicit, err := loadOver(start, file, overrides)
	if err != nil {
		return Config{}, err
	}
	if err := adoptBase(&cfg, explicit, b, source(file)); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// adoptBase takes the model section (and, unless set explicitly, the
// tokenizer and a classifier's labels) from the base b, refusing an
// explicit model.* key that differs from the base's.
func adoptBase(cfg *Config, explicit []string, b Base, src string) error {
	baseVals := Config{Model: b.Model}.Values()
	mine := cfg.Values()
	for _, k := range explicit {
		if !strings.HasPrefix(k, "model.") {
			continue
		}
		if !reflect.DeepEqual(mine[k], baseVals[k]) {
			return Usagef("%s: %s = %v, but the base %s has %v; the model section comes from the base, drop the key",
				src, k, mine[k], b.Dir, baseVals[k])
		}
	}
	cfg.Model = b.Model
	has := func(k string) bool {
		for _, e := range explicit {
			if e == k {
				return true
			}
		}
		return false
	}
	if !has("data.tokenizer") {
		// Our checkpoints carry a tokenizer.json too (internal/checkpoint); a
		// built-in tokenizer keeps its name, which the run's shards record.
		p := filepath.Join(b.Dir, "tokenizer.json")
		switch {
		case slices.Contains(data.TokenizerNames, b.Tokenizer):
			cfg.Data.Tokenizer = b.Tokenizer
		case fileExists(p):
			cfg.Data.Tokenizer = p
		case b.Tokenizer != "":
			cfg.Data.Tokenizer = b.Tokenizer
		}
	}
	if b.HF.IsClassifier() {
		if !has("finetune.task") {
			cfg.Finetune.Task = TaskClassify
		}
		if cfg.Finetune.Task == TaskClassify {
			if !has("finetune.num_labels") {
				cfg.Finetune.NumLabels = b.HF.NumLabels
			} else if cfg.Finetune.NumLabels != b.HF.NumLabels {
				return Usagef("%s: finetune.num_labels = %d, but the classifier %s has %d labels", src, cfg.Finetune.NumLabels, b.Dir, b.HF.NumLabels)
			}
			// The classifier's own class names, so that its ids keep their meaning.
			names, err := b.HF.LabelNames()
			if err != nil {
				return Usagef("%s: %w", filepath.Join(b.Dir, model.ConfigFile), err)
			}
			if names != nil {
				if !has("finetune.labels") {
					cfg.Finetune.Labels = names
				} else if !slices.Equal(cfg.Finetune.Labels, names) {
					return Usagef("%s: finetune.labels = [%s], but the classifier %s has id2label [%s]", src,
						strings.Join(cfg.Finetune.Labels, ", "), b.Dir, strings.Join(names, ", "))
				}
			}
		}
	}
	// seq_len defaults to the pretraining default; a base with shorter
	// positions caps it rather than failing on a key the user never set.
	if !has("train.seq_len") && cfg.Train.SeqLen > cfg.Model.MaxSeqLen {
		cfg.Train.SeqLen = cfg.Model.MaxSeqLen
	}
	return nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// resolveLabels gives a classify run without finetune.labels the names of
// its training data's string labels, and num_labels from the names when
// unset.
// src names the config file.
func resolveLabels(cfg *Config, src string) error {
	ft := &cfg.Finetune
	if ft.Task == TaskClassify && len(ft.Labels) > 0 && ft.NumLabels == 0 {
		ft.NumLabels = len(ft.Labels) // named classes, counted by the names
	}
	if ft.Task != TaskClassify || len(ft.Labels) > 0 || len(cfg.Data.Train) == 0 {
		return nil
	}
	files, err := data.ExpandGlobs(cfg.Data.Train)
	if err != nil {
		return Usagef("data.train: %w", err)
	}
	names, err := examples.LabelNames(files)
	if err != nil {
		return Usagef("data.train: %w", err)
	}
	if names == nil {
		return nil
	}
	switch {
	case ft.NumLabels == 0:
		ft.NumLabels = len(names)
	case ft.NumLabels != len(names):
		return Usagef("%s: finetune.num_labels = %d, but data.train has %d string labels (%s); name every class in id order with finetune.labels",
			src, ft.NumLabels, len(names), strings.Join(names, ", "))
	}
	ft.Labels = names
	return nil
}

// checkLabels validates finetune.labels against the task and num_labels.
func checkLabels(ft FinetuneConfig) error {
	if len(ft.Labels) == 0 {
		return nil
	}
	if ft.Task != TaskClassify {
		return fmt.Errorf("finetune.labels is only for finetune.task=classify")
	}
	if len(ft.Labels) != ft.NumLabels {
		return fmt.Errorf("finetune.labels names %d classes, finetune.num_labels = %d", len(ft.Labels), ft.NumLabels)
	}
	seen := map[string]bool{}
	for _, s := range ft.Labels {
		if s == "" {
			return fmt.Errorf("finetune.labels: a label name must not be empty")
		}
		if seen[s] {
			return fmt.Errorf("finetune.labels: %q appears twice", s)
		}
		seen[s] = true
	}
	return nil
}
