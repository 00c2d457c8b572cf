// Package config holds the configuration of a run: its sections (model,
// train, compact, data, finetune) and their defaults, loading them from a
// YAML file, COMPACT_* variables and --set (load.go, env.go, yamlkeys.go),
// validation that names the key at fault (validate.go, values.go), the YAML
// and JSON forms a run saves (yaml.go), what the keys resolve to (the
// recipe, recipe.go; the optimizer's settings, optimizer.go), and the model
// section a fine-tune or an evaluation takes from its base directory
// (finetune.go). Bad input is a UsageError (usage.go): the command exits
// with status 2.
package config

import (
	"reflect"
	"slices"

	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/gpu/device"
	"github.com/compact-llm/compact/internal/model"
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
	Weights         string  `mapstructure:"weights"`          // one of WeightModes (optimizer.go)
	OptimizerState  string  `mapstructure:"optimizer_state"`  // one of OptimizerStates
	GradAccumState  string  `mapstructure:"grad_accum_state"` // one of GradAccumStates: the gradient sums of grad_accum > 1 (internal/model/accum.go)
	FusedUpdate     bool    `mapstructure:"fused_update"`     // optimizer step inside backward (internal/optim/step.go)
	Zero            int     `mapstructure:"zero"`             // data parallel: 1 shards the optimizer state (internal/optim/zero.go), 0 does not
	OverlapComm     bool    `mapstructure:"overlap_comm"`     // data parallel, fused update: reduce block l during block l-1's backward (internal/optim/step.go)
	CUDAGraph       string  `mapstructure:"cuda_graph"`       // one of CUDAGraphModes (graph.go)
	CommTimeout     int     `mapstructure:"comm_timeout"`     // data parallel: seconds a rank may send nothing before the job ends naming it (0: never)
	SampleEvery     int     `mapstructure:"sample_every"`     // print a generated sample every N steps (0: never; internal/train/runextras.go)
	SampleTokens    int     `mapstructure:"sample_tokens"`    // tokens per sample
	TensorBoard     bool    `mapstructure:"tensorboard"`      // write TensorBoard event files beside metrics.jsonl (internal/train/tensorboard.go)
	// The training-health guard (internal/train/health.go): what to do
	// about a loss that spikes or rises, and how it is judged (health.go).
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
			CheckpointEvery: 1000, KeepCheckpoints: 2, SampleTokens: 64, Weights: WeightsAuto, OptimizerState: StateFP32, GradAccumState: StateFP32, Zero: ZeroState,
			OverlapComm: true, CUDAGraph: GraphAuto, CommTimeout: 60, OnInstability: InstabilityWarn, Health: defaultHealth()},
		Compact: model.CompactConfig{Enabled: true, Rank: 0.25, Layers: slices.Clone(model.DefaultLayers),
			Share: true, Projection: "gaussian", UpdateGap: 50, Alpha: 0.25, OProjScale: 1, Eps: 1e-6},
		Data:     DataConfig{Tokenizer: data.TokenizerGPT2, Format: data.FormatLLMC, SpecialTokens: data.SpecialMap, Shuffle: true, CorpusBytes: 16 << 20},
		Finetune: FinetuneConfig{Task: TaskCausal},
	}
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

// Values maps every key of c to its value.
func (c Config) Values() map[string]any {
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

// Warmup is the number of warmup steps.
func (c Config) Warmup() int {
	if c.Train.WarmupSteps > 0 {
		return c.Train.WarmupSteps
	}
	return int(c.Train.WarmupRatio * float64(c.Train.Steps))
}
