package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/compact-llm/compact/internal/model"
	"github.com/spf13/viper"
)

// Config is a whole run: model, training, CompAct and data. Every key is
// settable from YAML, `--set key.path=value` and COMPACT_KEY_PATH variables.
type Config struct {
	Model    model.Config        `mapstructure:"model"`
	Train    TrainConfig         `mapstructure:"train"`
	Compact  model.CompactConfig `mapstructure:"compact"`
	Data     DataConfig          `mapstructure:"data"`
	Finetune FinetuneConfig      `mapstructure:"finetune"`
}

// Fine-tuning tasks (finetune.task).
const (
	TaskCausal     = "causal"     // next-token loss on token shards, as pretraining
	TaskCompletion = "completion" // JSONL {"prompt","completion"}: loss on completion tokens only
	TaskClassify   = "classify"   // JSONL {"text","label"}: sequence classification head
)

// FinetuneConfig is what `compact finetune` adds to a run. Pretraining
// ignores it except that it must keep the causal task.
type FinetuneConfig struct {
	Task        string  `mapstructure:"task"`
	NumLabels   int     `mapstructure:"num_labels"`   // classify: number of classes
	ValFraction float64 `mapstructure:"val_fraction"` // JSONL tasks without data.val: share of data.train held out
}

// TrainConfig is the optimization and bookkeeping of a run.
type TrainConfig struct {
	Device          string  `mapstructure:"device"` // auto | cpu | cuda
	Threads         int     `mapstructure:"threads"`
	SeqLen          int     `mapstructure:"seq_len"`
	MicroBatch      int     `mapstructure:"micro_batch"`
	GradAccum       int     `mapstructure:"grad_accum"`
	Steps           int     `mapstructure:"steps"`
	LR              float64 `mapstructure:"lr"`
	MinLRRatio      float64 `mapstructure:"min_lr_ratio"`
	WarmupRatio     float64 `mapstructure:"warmup_ratio"`
	WarmupSteps     int     `mapstructure:"warmup_steps"`
	WeightDecay     float64 `mapstructure:"weight_decay"`
	Beta1           float64 `mapstructure:"beta1"`
	Beta2           float64 `mapstructure:"beta2"`
	AdamEps         float64 `mapstructure:"adam_eps"`
	GradClip        float64 `mapstructure:"grad_clip"`
	Seed            uint64  `mapstructure:"seed"`
	Recompute       string  `mapstructure:"recompute"`
	LossChunk       int     `mapstructure:"loss_chunk"`
	LogEvery        int     `mapstructure:"log_every"`
	EvalEvery       int     `mapstructure:"eval_every"`
	EvalBatches     int     `mapstructure:"eval_batches"`
	CheckpointEvery int     `mapstructure:"checkpoint_every"`
	KeepCheckpoints int     `mapstructure:"keep_checkpoints"`
}

// DataConfig names the token shards, or none for the default corpus.
type DataConfig struct {
	Tokenizer   string   `mapstructure:"tokenizer"` // gpt2 | byte | path to a HuggingFace tokenizer.json
	Train       []string `mapstructure:"train"`     // shard globs; empty: the default corpus
	Val         []string `mapstructure:"val"`
	Format      string   `mapstructure:"format"` // llmc | nanogpt
	Shuffle     bool     `mapstructure:"shuffle"`
	CorpusBytes int64    `mapstructure:"corpus_bytes"` // default corpus size in bytes of source text
}

// Default is the configuration every file starts from: a small model, the
// paper's CompAct defaults for pretraining, and the default corpus.
func Default() Config {
	return Config{
		Model: model.Config{VocabSize: 50304, Hidden: 512, Intermediate: 1376, Layers: 8, Heads: 8, KVHeads: 8,
			MaxSeqLen: 256, RopeTheta: 10000, RMSEps: 1e-6, InitStd: 0.02},
		Train: TrainConfig{Device: "auto", SeqLen: 256, MicroBatch: 64, GradAccum: 1, Steps: 10000,
			LR: 1e-3, MinLRRatio: 0.1, WarmupRatio: 0.1, Beta1: 0.9, Beta2: 0.999, AdamEps: 1e-8,
			GradClip: 1.0, Seed: 42, Recompute: "none", LogEvery: 10, EvalEvery: 500, EvalBatches: 20,
			CheckpointEvery: 1000, KeepCheckpoints: 2},
		Compact: model.CompactConfig{Enabled: true, Rank: 0.25, Layers: slices.Clone(model.CompressibleLayers),
			Share: true, Projection: "gaussian", UpdateGap: 50, Alpha: 0.25, OProjScale: 0.5, Eps: 1e-6},
		Data:     DataConfig{Tokenizer: "gpt2", Format: "llmc", Shuffle: true, CorpusBytes: 16 << 20},
		Finetune: FinetuneConfig{Task: TaskCausal},
	}
}

// UsageError is bad input from the user: the command exits with status 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef builds a UsageError.
func Usagef(format string, a ...any) error { return &UsageError{fmt.Errorf(format, a...)} }

// IsUsage reports whether err is bad input.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

// Keys lists every configuration key, e.g. "train.lr".
func Keys() []string {
	var keys []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := prefix + f.Tag.Get("mapstructure")
			if f.Type.Kind() == reflect.Struct {
				walk(name+".", f.Type)
				continue
			}
			keys = append(keys, name)
		}
	}
	walk("", reflect.TypeOf(Config{}))
	return keys
}

// flatten maps every key of c to its value.
func flatten(c Config) map[string]any {
	out := map[string]any{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			name := prefix + f.Tag.Get("mapstructure")
			if f.Type.Kind() == reflect.Struct {
				walk(name+".", v.Field(i))
				continue
			}
			out[name] = v.Field(i).Interface()
		}
	}
	walk("", reflect.ValueOf(c))
	return out
}

// Load reads file (may be empty for defaults only), then COMPACT_* variables,
// then overrides ("key.path=value"), and validates the result. Every error
// is a UsageError naming the file or key.
func Load(file string, overrides []string) (Config, error) {
	cfg, _, err := loadOver(Default(), file, overrides)
	if err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, &UsageError{err}
	}
	return cfg, nil
}

// loadOver is Load without validation, starting from start instead of
// Default(). It also returns the keys the file, the environment or the
// overrides set explicitly (so fine-tuning can tell a user's model.* key
// from a default).
func loadOver(start Config, file string, overrides []string) (Config, []string, error) {
	v := viper.New()
	for k, val := range flatten(start) {
		v.SetDefault(k, val)
	}
	v.SetEnvPrefix("COMPACT")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if file != "" {
		if _, err := os.Stat(file); err != nil {
			return Config{}, nil, Usagef("config %s: %w", file, err)
		}
		v.SetConfigFile(file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return Config{}, nil, Usagef("config %s: %w", file, err)
		}
	}
	known := Keys()
	var explicit []string
	for _, k := range known {
		if v.InConfig(k) {
			explicit = append(explicit, k)
		} else if _, ok := os.LookupEnv("COMPACT_" + strings.ToUpper(strings.ReplaceAll(k, ".", "_"))); ok {
			explicit = append(explicit, k)
		}
	}
	for _, k := range v.AllKeys() {
		if !slices.Contains(known, k) {
			return Config{}, nil, Usagef("%s: unknown key %s (known keys: %s)", source(file), k, strings.Join(known, ", "))
		}
	}
	for _, o := range overrides {
		key, val, ok := strings.Cut(o, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if !ok || key == "" {
			return Config{}, nil, Usagef("--set %q: want key.path=value", o)
		}
		if !slices.Contains(known, key) {
			return Config{}, nil, Usagef("--set %s: unknown key (known keys: %s)", key, strings.Join(known, ", "))
		}
		v.Set(key, val)
		explicit = append(explicit, key)
	}
	setBy := map[string]bool{}
	for _, o := range overrides {
		k, _, _ := strings.Cut(o, "=")
		setBy[strings.ToLower(strings.TrimSpace(k))] = true
	}
	if err := checkIntegers(v, keyKinds(start), file, setBy); err != nil {
		return Config{}, nil, err
	}
	var cfg Config
	if err := v.UnmarshalExact(&cfg); err != nil {
		return Config{}, nil, Usagef("%s: %w", source(file), err)
	}
	if err := checkFloats(cfg, file, setBy); err != nil {
		return Config{}, nil, err
	}
	if file != "" {
		cfg.resolvePaths(filepath.Dir(file))
	}
	return cfg, explicit, nil
}

func source(file string) string {
	if file == "" {
		return "configuration"
	}
	return "config " + file
}

// resolvePaths makes relative data paths relative to the config file's
// directory when they do not exist relative to the working directory.
func (c *Config) resolvePaths(dir string) {
	fix := func(globs []string) {
		for i, g := range globs {
			if filepath.IsAbs(g) {
				continue
			}
			if m, _ := filepath.Glob(g); len(m) > 0 {
				continue
			}
			if m, _ := filepath.Glob(filepath.Join(dir, g)); len(m) > 0 {
				globs[i] = filepath.Join(dir, g)
			}
		}
	}
	fix(c.Data.Train)
	fix(c.Data.Val)
}

// Validate checks every impossible value and names its key.
func (c Config) Validate() error {
	if err := c.Model.Validate(); err != nil {
		return err
	}
	if err := validateNumbers(c); err != nil {
		return err
	}
	t := c.Train
	if !slices.Contains([]string{"auto", "cpu", "cuda"}, t.Device) {
		return fmt.Errorf("train.device = %q: want auto, cpu or cuda", t.Device)
	}
	positive := []struct {
		key string
		val int
	}{{"train.seq_len", t.SeqLen}, {"train.micro_batch", t.MicroBatch}, {"train.grad_accum", t.GradAccum},
		{"train.steps", t.Steps}, {"train.log_every", t.LogEvery}, {"train.eval_batches", t.EvalBatches},
		{"train.keep_checkpoints", t.KeepCheckpoints}}
	for _, p := range positive {
		if p.val <= 0 {
			return fmt.Errorf("%s = %d: must be positive", p.key, p.val)
		}
	}
	nonNeg := []struct {
		key string
		val int
	}{{"train.threads", t.Threads}, {"train.warmup_steps", t.WarmupSteps}, {"train.loss_chunk", t.LossChunk},
		{"train.eval_every", t.EvalEvery}, {"train.checkpoint_every", t.CheckpointEvery}}
	for _, p := range nonNeg {
		if p.val < 0 {
			return fmt.Errorf("%s = %d: must not be negative", p.key, p.val)
		}
	}
	if t.SeqLen > c.Model.MaxSeqLen {
		return fmt.Errorf("train.seq_len = %d exceeds model.max_seq_len = %d", t.SeqLen, c.Model.MaxSeqLen)
	}
	if t.LR <= 0 {
		return fmt.Errorf("train.lr = %g: must be positive", t.LR)
	}
	if t.MinLRRatio < 0 || t.MinLRRatio > 1 {
		return fmt.Errorf("train.min_lr_ratio = %g: must be in [0, 1]", t.MinLRRatio)
	}
	if t.WarmupRatio < 0 || t.WarmupRatio >= 1 {
		return fmt.Errorf("train.warmup_ratio = %g: must be in [0, 1)", t.WarmupRatio)
	}
	if t.Beta1 < 0 || t.Beta1 >= 1 {
		return fmt.Errorf("train.beta1 = %g: must be in [0, 1)", t.Beta1)
	}
	if t.Beta2 < 0 || t.Beta2 >= 1 {
		return fmt.Errorf("train.beta2 = %g: must be in [0, 1)", t.Beta2)
	}
	if t.AdamEps <= 0 {
		return fmt.Errorf("train.adam_eps = %g: must be positive", t.AdamEps)
	}
	if t.WeightDecay < 0 {
		return fmt.Errorf("train.weight_decay = %g: must not be negative", t.WeightDecay)
	}
	if _, err := model.ParseRecompute(t.Recompute); err != nil {
		return fmt.Errorf("train.recompute: %w", err)
	}
	if err := c.Compact.Check(c.Model); err != nil {
		return err
	}
	d, ft := c.Data, c.Finetune
	if !slices.Contains([]string{"gpt2", "byte"}, d.Tokenizer) {
		// A HuggingFace tokenizer.json, or a directory holding one.
		path := d.Tokenizer
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			path = filepath.Join(path, "tokenizer.json")
		}
		if !strings.HasSuffix(path, ".json") {
			return fmt.Errorf("data.tokenizer = %q: want gpt2, byte, a HuggingFace tokenizer.json or a directory holding one", d.Tokenizer)
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("data.tokenizer: %w", err)
		}
	}
	if !slices.Contains([]string{TaskCausal, TaskCompletion, TaskClassify}, ft.Task) {
		return fmt.Errorf("finetune.task = %q: want causal, completion or classify", ft.Task)
	}
	if ft.Task == TaskClassify && ft.NumLabels < 2 {
		return fmt.Errorf("finetune.num_labels = %d: classify needs at least 2", ft.NumLabels)
	}
	if ft.Task != TaskClassify && ft.NumLabels != 0 {
		return fmt.Errorf("finetune.num_labels = %d is only for finetune.task=classify", ft.NumLabels)
	}
	if ft.ValFraction < 0 || ft.ValFraction >= 1 {
		return fmt.Errorf("finetune.val_fraction = %g: must be in [0, 1)", ft.ValFraction)
	}
	if ft.Task != TaskCausal {
		if len(d.Train) == 0 {
			return fmt.Errorf("finetune.task = %s needs data.train: JSONL files", ft.Task)
		}
		if len(d.Val) > 0 && ft.ValFraction > 0 {
			return fmt.Errorf("finetune.val_fraction = %g and data.val are both set: choose one", ft.ValFraction)
		}
	} else if ft.ValFraction > 0 {
		return fmt.Errorf("finetune.val_fraction is for the JSONL tasks; causal fine-tuning takes data.val shards")
	}
	if !slices.Contains([]string{"llmc", "nanogpt"}, d.Format) {
		return fmt.Errorf("data.format = %q: want llmc or nanogpt", d.Format)
	}
	if len(d.Train) == 0 && len(d.Val) > 0 {
		return fmt.Errorf("data.val is set but data.train is empty")
	}
	if len(d.Train) > 0 && len(d.Val) == 0 && ft.ValFraction == 0 {
		return fmt.Errorf("data.train is set but data.val is empty: name validation shards")
	}
	for _, key := range []string{"data.train", "data.val"} {
		globs := d.Train
		if key == "data.val" {
			globs = d.Val
		}
		for _, g := range globs {
			m, err := filepath.Glob(g)
			if err != nil {
				return fmt.Errorf("%s: bad pattern %q: %w", key, g, err)
			}
			if len(m) == 0 {
				return fmt.Errorf("%s: no file matches %q", key, g)
			}
		}
	}
	if len(d.Train) == 0 && d.CorpusBytes <= 0 {
		return fmt.Errorf("data.corpus_bytes = %d: must be positive for the default corpus", d.CorpusBytes)
	}
	// A tokenizer.json's size is checked once it is loaded.
	tokVocab := map[string]int{"gpt2": 50257, "byte": 257}[d.Tokenizer]
	if c.Model.VocabSize < tokVocab {
		return fmt.Errorf("model.vocab_size = %d is smaller than the %s tokenizer's %d tokens", c.Model.VocabSize, d.Tokenizer, tokVocab)
	}
	return nil
}

// Warmup is the number of warmup steps.
func (c Config) Warmup() int {
	if c.Train.WarmupSteps > 0 {
		return c.Train.WarmupSteps
	}
	return int(c.Train.WarmupRatio * float64(c.Train.Steps))
}
