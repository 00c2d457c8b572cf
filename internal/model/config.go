// Package model defines the LLaMA decoder of compact (numerically the
// definition of HuggingFace LlamaForCausalLM) and orchestrates its explicit
// forward and backward passes, kernel by kernel, on a gpu.Backend.
package model

import (
	"fmt"
	"math"
)

// Size limits checked by Validate.
const (
	MaxDim    = 1 << 24 // any single model dimension
	MaxParams = 1 << 40 // parameters in all
)

// Config is the architecture. Field names follow HuggingFace's LlamaConfig
// where one exists, so config.json maps one to one.
type Config struct {
	VocabSize     int     `mapstructure:"vocab_size" json:"vocab_size"`
	Hidden        int     `mapstructure:"hidden_size" json:"hidden_size"`
	Intermediate  int     `mapstructure:"intermediate_size" json:"intermediate_size"`
	Layers        int     `mapstructure:"num_layers" json:"num_hidden_layers"`
	Heads         int     `mapstructure:"num_heads" json:"num_attention_heads"`
	KVHeads       int     `mapstructure:"num_kv_heads" json:"num_key_value_heads"`
	MaxSeqLen     int     `mapstructure:"max_seq_len" json:"max_position_embeddings"`
	RopeTheta     float64 `mapstructure:"rope_theta" json:"rope_theta"`
	RMSEps        float64 `mapstructure:"rms_eps" json:"rms_norm_eps"`
	TieEmbeddings bool    `mapstructure:"tie_embeddings" json:"tie_word_embeddings"`
	InitStd       float64 `mapstructure:"init_std" json:"initializer_range"`
}

// HeadDim is the width of one attention head.
func (c Config) HeadDim() int { return c.Hidden / c.Heads }

// KVWidth is the width of the k and v projections.
func (c Config) KVWidth() int { return c.KVHeads * c.HeadDim() }

// Validate reports the first impossible value, naming its key.
func (c Config) Validate() error {
	pos := map[string]int{"model.vocab_size": c.VocabSize, "model.hidden_size": c.Hidden,
		"model.intermediate_size": c.Intermediate, "model.num_layers": c.Layers,
		"model.num_heads": c.Heads, "model.num_kv_heads": c.KVHeads, "model.max_seq_len": c.MaxSeqLen}
	for _, k := range []string{"model.vocab_size", "model.hidden_size", "model.intermediate_size",
		"model.num_layers", "model.num_heads", "model.num_kv_heads", "model.max_seq_len"} {
		if pos[k] <= 0 {
			return fmt.Errorf("%s = %d: must be positive", k, pos[k])
		}
	}
	// Caps keep every size computation far from int64 overflow and turn an
	// absurd value into an error before anything is allocated; real models
	// are orders of magnitude below them (Llama 3: vocabulary 128256).
	for _, k := range []string{"model.vocab_size", "model.hidden_size", "model.intermediate_size",
		"model.num_layers", "model.num_heads", "model.num_kv_heads", "model.max_seq_len"} {
		if pos[k] > MaxDim {
			return fmt.Errorf("%s = %d: at most %d is supported", k, pos[k], MaxDim)
		}
	}
	if n := c.paramsFloat(); n > MaxParams {
		return fmt.Errorf("model.vocab_size = %d, hidden_size = %d, intermediate_size = %d, num_layers = %d: %.3g parameters, more than the %d this engine supports",
			c.VocabSize, c.Hidden, c.Intermediate, c.Layers, n, int64(MaxParams))
	}
	for _, f := range []struct {
		key string
		v   float64
	}{{"model.rope_theta", c.RopeTheta}, {"model.rms_eps", c.RMSEps}, {"model.init_std", c.InitStd}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("%s = %g: must be a finite number", f.key, f.v)
		}
	}
	if c.Hidden%c.Heads != 0 {
		return fmt.Errorf("model.num_heads = %d does not divide model.hidden_size = %d", c.Heads, c.Hidden)
	}
	if c.HeadDim()%2 != 0 {
		return fmt.Errorf("model.hidden_size / model.num_heads = %d: RoPE needs an even head dimension", c.HeadDim())
	}
	if c.Heads%c.KVHeads != 0 {
		return fmt.Errorf("model.num_kv_heads = %d does not divide model.num_heads = %d", c.KVHeads, c.Heads)
	}
	if c.RopeTheta <= 0 {
		return fmt.Errorf("model.rope_theta = %g: must be positive", c.RopeTheta)
	}
	if c.RMSEps <= 0 {
		return fmt.Errorf("model.rms_eps = %g: must be positive", c.RMSEps)
	}
	if c.InitStd <= 0 {
		return fmt.Errorf("model.init_std = %g: must be positive", c.InitStd)
	}
	return nil
}

// paramsFloat is NumParams in float64, safe from overflow for any sizes.
func (c Config) paramsFloat() float64 {
	C, F, V, L := float64(c.Hidden), float64(c.Intermediate), float64(c.VocabSize), float64(c.Layers)
	return L*(2*C+2*C*C+2*C*C+3*C*F) + 2*V*C + C
}

// NumParams counts parameters; the embedding once when tied.
func (c Config) NumParams() int64 {
	C, F, kv := int64(c.Hidden), int64(c.Intermediate), int64(c.KVWidth())
	perLayer := 2*C + C*C + 2*C*kv + C*C + 3*C*F
	n := int64(c.Layers)*perLayer + int64(c.VocabSize)*C + C
	if !c.TieEmbeddings {
		n += int64(c.VocabSize) * C
	}
	return n
}

// TrainFLOPsPerToken counts forward+backward FLOPs of one token at sequence
// length T: 6 per weight of every matmul (the embedding lookup is free) plus
// causal attention's score and value products (2*2*T*C forward on average
// half of T, times 3 for backward), in the PaLM/llm.c convention.
func (c Config) TrainFLOPsPerToken(T int) float64 {
	C, F, kv := float64(c.Hidden), float64(c.Intermediate), float64(c.KVWidth())
	matmul := float64(c.Layers)*(2*C*C+2*C*kv+3*C*F) + float64(c.VocabSize)*C
	attn := float64(c.Layers) * 2 * C * float64(T) // causal: half of 4*T*C
	return 6*matmul + 3*attn
}
