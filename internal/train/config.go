package train

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/compact-llm/compact/configs"
	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/gpu/device"
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

// Tasks lists the finetune.task values.
var Tasks = []string{TaskCausal, TaskCompletion, TaskClassify}

// FinetuneConfig is what `compact finetune` adds to a run. Pretraining
// ignores it except that it must keep the causal task.
type FinetuneConfig struct {
	Task        string   `mapstructure:"task"`         // one of Tasks
	NumLabels   int      `mapstructure:"num_labels"`   // classify: number of classes
	Labels      []string `mapstructure:"labels"`       // classify: class names in id order (labels.go)
	ValFraction float64  `mapstructure:"val_fraction"` // JSONL tasks without data.val: share of data.train held out
}

// TrainConfig is the optimization and bookkeeping of a run.
type TrainConfig struct {
	Device          string  `mapstructure:"device"` // one of device.Names
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
	AdamEps         float64 `mapstructure:"adam_eps"`  // 0: the optimizer form's default (see AdamEpsilon)
	Optimizer       string  `mapstructure:"optimizer"` // one of Optimizers (see AdamForm)
	GradClip        float64 `mapstructure:"grad_clip"`
	Seed            uint64  `mapstructure:"seed"`
	Recompute       string  `mapstructure:"recompute"` // one of model.RecomputeNames
	LossChunk       int     `mapstructure:"loss_chunk"`
	LogEvery        int     `mapstructure:"log_every"`
	EvalEvery       int     `mapstructure:"eval_every"`
	EvalBatches     int     `mapstructure:"eval_batches"`
	CheckpointEvery int     `mapstructure:"checkpoint_every"`
	KeepCheckpoints int     `mapstructure:"keep_checkpoints"`
	Weights         string  `mapstructure:"weights"`         // one of WeightModes (optimizer.go)
	OptimizerState  string  `mapstructure:"optimizer_state"` // one of OptimizerStates
	FusedUpdate     bool    `mapstructure:"fused_update"`    // optimizer step inside backward (internal/optim/step.go)
	Zero            int     `mapstructure:"zero"`            // data parallel: 1 shards the optimizer state (internal/optim/zero.go), 0 does not
	OverlapComm     bool    `mapstructure:"overlap_comm"`    // data parallel, fused update: reduce block l during block l-1's backward (internal/optim/step.go)
	CUDAGraph       string  `mapstructure:"cuda_graph"`      // one of CUDAGraphModes (graphstep.go)
	CommTimeout     int     `mapstructure:"comm_timeout"`    // data parallel: seconds a rank may send nothing before the job ends naming it (0: never)
	SampleEvery     int     `mapstructure:"sample_every"`    // print a generated sample every N steps (0: never; runextras.go)
	SampleTokens    int     `mapstructure:"sample_tokens"`   // tokens per sample
	TensorBoard     bool    `mapstructure:"tensorboard"`     // write TensorBoard event files beside metrics.jsonl (tensorboard.go)
	// The training-health guard (health.go): what to do about a loss that
	// spikes or rises, and how it is judged.
	OnInstability string       `mapstructure:"on_instability"` // one of InstabilityPolicies
	Health        HealthConfig `mapstructure:"health"`
}

// DataConfig names the token shards, or none for the default corpus.
type DataConfig struct {
	Tokenizer string   `mapstructure:"tokenizer"` // one of data.TokenizerNames, or a HuggingFace tokenizer.json
	Train     []string `mapstructure:"train"`     // shard globs; empty: the default corpus
	Val       []string `mapstructure:"val"`
	Format    string   `mapstructure:"format"` // one of data.Formats
	// SpecialTokens is how the fine-tuning JSONL readers encode
	// special-token text (data.SpecialTokenModes): "map" to the special ids
	// as HF's encode and chat templates need, or "text".
	SpecialTokens string `mapstructure:"special_tokens"`
	Shuffle       bool   `mapstructure:"shuffle"`
	CorpusBytes   int64  `mapstructure:"corpus_bytes"` // default corpus size in bytes of source text
}

// Default is the configuration every file starts from: a small model, the
// paper's CompAct defaults for pretraining, and the default corpus.
func Default() Config {
	return Config{
		Model: model.Config{VocabSize: 50304, Hidden: 512, Intermediate: 1376, Layers: 8, Heads: 8, KVHeads: 8,
			MaxSeqLen: 256, RopeTheta: 10000, RMSEps: 1e-6, InitStd: 0.02},
		Train: TrainConfig{Device: device.Auto, SeqLen: 256, MicroBatch: 64, GradAccum: 1, Steps: 10000,
			LR: 1e-3, MinLRRatio: 0.1, WarmupRatio: 0.1, Beta1: 0.9, Beta2: 0.999, Optimizer: OptimizerAuto,
			GradClip: 1.0, Seed: 42, Recompute: model.RecomputeNone.String(), LogEvery: 10, EvalEvery: 500, EvalBatches: 20,
			CheckpointEvery: 1000, KeepCheckpoints: 2, SampleTokens: 64, Weights: WeightsAuto, OptimizerState: StateFP32, Zero: ZeroState,
			OverlapComm: true, CUDAGraph: GraphAuto, CommTimeout: 60, OnInstability: InstabilityWarn, Health: defaultHealth()},
		Compact: model.CompactConfig{Enabled: true, Rank: 0.25, Layers: slices.Clone(model.CompressibleLayers),
			Share: true, Projection: "gaussian", UpdateGap: 50, Alpha: 0.25, OProjScale: 1, Eps: 1e-6},
		Data:     DataConfig{Tokenizer: data.TokenizerGPT2, Format: data.FormatLLMC, SpecialTokens: data.SpecialMap, Shuffle: true, CorpusBytes: 16 << 20},
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
	cfg, origin, err := loadSources(Default(), file, overrides)
	if err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, &UsageError{blame(err, origin)}
	}
	return cfg, nil
}

// loadOver is Load without validation, starting from start instead of
// Default(). It also returns the keys the file, the environment or the
// overrides set explicitly (so fine-tuning can tell a user's model.* key
// from a default). Layers are applied one at a time so that an error blames
// its own source: the file and key, the COMPACT_* variable, or the --set.
func loadOver(start Config, file string, overrides []string) (Config, []string, error) {
	cfg, origin, err := loadSources(start, file, overrides)
	var explicit []string
	for _, k := range Keys() {
		if origin[k] != "" {
			explicit = append(explicit, k)
		}
	}
	return cfg, explicit, err
}

// loadSources is loadOver returning, for every key set explicitly, where
// it was set ("config F", "environment COMPACT_X", "--set k=v").
func loadSources(start Config, file string, overrides []string) (Config, map[string]string, error) {
	origin := map[string]string{}
	cfg, inFile, err := loadFile(start, file)
	if err != nil {
		return Config{}, nil, err
	}
	for _, k := range inFile {
		origin[k] = "config " + file
	}
	env, err := configEnv()
	if err != nil {
		return Config{}, nil, err
	}
	for _, e := range env {
		if cfg, err = setKey(cfg, e.key, e.val); err != nil {
			return Config{}, nil, Usagef("environment %s=%s: %w", e.name, e.val, err)
		}
		origin[e.key] = "environment " + e.name + "=" + e.val
	}
	known := Keys()
	for _, o := range overrides {
		key, val, ok := strings.Cut(o, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if !ok || key == "" {
			return Config{}, nil, Usagef("--set %q: want key.path=value", o)
		}
		if !slices.Contains(known, key) {
			return Config{}, nil, Usagef("--set %s: unknown key%s", key, suggestKey(key, known))
		}
		if cfg, err = setKey(cfg, key, val); err != nil {
			return Config{}, nil, Usagef("--set %s=%s: %w", key, val, err)
		}
		origin[key] = "--set " + key + "=" + val
	}
	if file != "" && !strings.HasPrefix(file, configs.Builtin) {
		cfg.resolvePaths(filepath.Dir(file))
	}
	return cfg, origin, nil
}

// blame prefixes a validation error that starts with a key's name with
// where that key was set, so the user knows which line to fix.
func blame(err error, origin map[string]string) error {
	msg, best := err.Error(), ""
	for k := range origin {
		if strings.HasPrefix(msg, k) && len(k) > len(best) {
			best = k
		}
	}
	if best == "" {
		return err
	}
	return fmt.Errorf("%s: %w", origin[best], err)
}

// loadFile applies the YAML file (if any) over start and returns the keys it
// set.
func loadFile(start Config, file string) (Config, []string, error) {
	if file == "" {
		return start, nil, nil
	}
	v := viper.New()
	for k, val := range flatten(start) {
		v.SetDefault(k, val)
	}
	v.SetConfigType("yaml")
	var body []byte
	if name, ok := strings.CutPrefix(file, configs.Builtin); ok {
		var err error
		if body, err = configs.FS.ReadFile(name); err != nil {
			return Config{}, nil, Usagef("config %s: no such built-in config (there are %s%s; compact configs lists them)", file, configs.Builtin, strings.Join(configs.Names(), ", "+configs.Builtin))
		}
	} else {
		var err error
		if body, err = data.ReadRegular(file); err != nil { // no FIFO, no byte order mark
			return Config{}, nil, Usagef("config %s: %w", file, err)
		}
	}
	known := Keys()
	if err := yamlKeys(body, file, known); err != nil {
		return Config{}, nil, err
	}
	if err := v.ReadConfig(bytes.NewReader(body)); err != nil {
		return Config{}, nil, Usagef("config %s: %w", file, err)
	}
	sectionNames, _ := sections()
	for _, k := range v.AllKeys() {
		if !slices.Contains(known, k) && !slices.Contains(sectionNames, k) { // an empty section: `train:` with every key commented out
			return Config{}, nil, Usagef("config %s: unknown key %s%s", file, k, suggestKey(k, known))
		}
	}
	var explicit []string
	for _, k := range known {
		if v.InConfig(k) {
			explicit = append(explicit, k)
		}
	}
	if err := checkIntegers(v, keyKinds(start), file, nil); err != nil {
		return Config{}, nil, err
	}
	var cfg Config
	if err := v.UnmarshalExact(&cfg); err != nil {
		return Config{}, nil, Usagef("config %s: %w", file, decodeError(err))
	}
	if err := checkFloats(cfg, file, nil); err != nil {
		return Config{}, nil, err
	}
	return cfg, explicit, nil
}

// setKey returns cfg with key set from its string form, decoded exactly as
// a YAML scalar would be (lists are comma-separated).
func setKey(cfg Config, key, val string) (Config, error) {
	v := viper.New()
	for k, cur := range flatten(cfg) {
		v.SetDefault(k, cur)
	}
	whole, err := wholeNumber(val, keyKinds(cfg)[key])
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", key, err)
	}
	v.Set(key, whole)
	var out Config
	if err := v.UnmarshalExact(&out); err != nil {
		return Config{}, decodeError(err)
	}
	return out, nil
}

// decodeError drops mapstructure's multi-line preamble, keeping the lines
// that name the key.
func decodeError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "decoding failed due to the following error(s):")
	msg = strings.TrimSpace(msg)
	return errors.New(strings.ReplaceAll(msg, "\n", "; "))
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

// oneOf refuses a value of key that is not among names, listing them.
func oneOf(key, value string, names []string) error {
	if !slices.Contains(names, value) {
		return fmt.Errorf("%s = %q: want one of %s", key, value, strings.Join(names, ", "))
	}
	return nil
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
	if err := oneOf("train.device", t.Device, device.Names); err != nil {
		return err
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
		{"train.eval_every", t.EvalEvery}, {"train.checkpoint_every", t.CheckpointEvery}, {"train.sample_every", t.SampleEvery}}
	for _, p := range nonNeg {
		if p.val < 0 {
			return fmt.Errorf("%s = %d: must not be negative", p.key, p.val)
		}
	}
	if t.SeqLen > c.Model.MaxSeqLen {
		return fmt.Errorf("train.seq_len = %d exceeds model.max_seq_len = %d", t.SeqLen, c.Model.MaxSeqLen)
	}
	if t.SampleEvery > 0 && (t.SampleTokens < 1 || t.SampleTokens > 1<<20) {
		return fmt.Errorf("train.sample_tokens = %d: want 1 to %d with train.sample_every set", t.SampleTokens, 1<<20)
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
	if t.AdamEps < 0 {
		return fmt.Errorf("train.adam_eps = %g: must be positive (or 0 for the optimizer's default)", t.AdamEps)
	}
	if err := oneOf("train.optimizer", t.Optimizer, Optimizers); err != nil {
		return err
	}
	if t.WeightDecay < 0 {
		return fmt.Errorf("train.weight_decay = %g: must not be negative", t.WeightDecay)
	}
	if err := oneOf("train.weights", t.Weights, WeightModes); err != nil {
		return err
	}
	if err := oneOf("train.optimizer_state", t.OptimizerState, OptimizerStates); err != nil {
		return err
	}
	if err := oneOf("train.cuda_graph", t.CUDAGraph, CUDAGraphModes); err != nil {
		return err
	}
	if err := checkHealth(t); err != nil {
		return err
	}
	if t.FusedUpdate && t.GradClip != 0 {
		return fmt.Errorf("train.grad_clip = %g: train.fused_update updates each layer before the global gradient norm is known, so it needs train.grad_clip = 0", t.GradClip)
	}
	if t.CommTimeout < 0 {
		return fmt.Errorf("train.comm_timeout = %d: must be seconds >= 0 (0: never end a job for a silent rank)", t.CommTimeout)
	}
	if t.Zero != ZeroOff && t.Zero != ZeroState {
		return fmt.Errorf("train.zero = %d: must be %d (every rank keeps the whole optimizer state) or %d (ZeRO-1: each rank keeps its share)", t.Zero, ZeroOff, ZeroState)
	}
	if _, err := model.ParseRecompute(t.Recompute); err != nil {
		return fmt.Errorf("train.recompute: %w", err)
	}
	if err := c.Compact.Check(c.Model); err != nil {
		return err
	}
	if err := c.checkApplies(); err != nil {
		return err
	}
	d, ft := c.Data, c.Finetune
	if !slices.Contains(data.TokenizerNames, d.Tokenizer) {
		// A HuggingFace tokenizer.json, or a directory holding one.
		path := d.Tokenizer
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			path = filepath.Join(path, "tokenizer.json")
		}
		if !strings.HasSuffix(path, ".json") {
			return fmt.Errorf("data.tokenizer = %q: want %s, a HuggingFace tokenizer.json or a directory holding one", d.Tokenizer, strings.Join(data.TokenizerNames, ", "))
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("data.tokenizer: %w", err)
		}
	}
	if err := oneOf("finetune.task", ft.Task, Tasks); err != nil {
		return err
	}
	if ft.Task == TaskClassify && ft.NumLabels < 2 {
		return fmt.Errorf("finetune.num_labels = %d: classify needs at least 2", ft.NumLabels)
	}
	if ft.Task == TaskClassify && c.Train.SampleEvery > 0 {
		return fmt.Errorf("train.sample_every = %d: a classifier has no LM head to generate with (finetune.task = classify)", c.Train.SampleEvery)
	}
	if ft.Task != TaskClassify && ft.NumLabels != 0 {
		return fmt.Errorf("finetune.num_labels = %d is only for finetune.task=classify", ft.NumLabels)
	}
	if err := checkLabels(ft); err != nil {
		return err
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
	if err := oneOf("data.special_tokens", d.SpecialTokens, data.SpecialTokenModes); err != nil {
		return err
	}
	if err := oneOf("data.format", d.Format, data.Formats); err != nil {
		return err
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
	tokVocab := map[string]int{data.TokenizerGPT2: 50257, data.TokenizerByte: 257}[d.Tokenizer]
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
