package model

// HuggingFace interoperability: config.json in LlamaConfig form and weights
// in model.safetensors under HF parameter names.

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// HFConfig is the subset of transformers' LlamaConfig that compact writes
// and reads.
type HFConfig struct {
	Architectures         []string `json:"architectures"`
	ModelType             string   `json:"model_type"`
	VocabSize             int      `json:"vocab_size"`
	HiddenSize            int      `json:"hidden_size"`
	IntermediateSize      int      `json:"intermediate_size"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	NumAttentionHeads     int      `json:"num_attention_heads"`
	NumKeyValueHeads      int      `json:"num_key_value_heads"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	RMSNormEps            float64  `json:"rms_norm_eps"`
	RopeTheta             float64  `json:"rope_theta"`
	TieWordEmbeddings     bool     `json:"tie_word_embeddings"`
	InitializerRange      float64  `json:"initializer_range"`
	HiddenAct             string   `json:"hidden_act"`
	AttentionBias         bool     `json:"attention_bias"`
	MLPBias               bool     `json:"mlp_bias"`
	TorchDType            string   `json:"torch_dtype"`
	BOSTokenID            *int     `json:"bos_token_id,omitempty"`
	EOSTokenID            *int     `json:"eos_token_id,omitempty"`
}

// HF returns c as a LlamaConfig; eos < 0 leaves the special tokens unset.
func (c Config) HF(eos int) HFConfig {
	h := HFConfig{Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama", VocabSize: c.VocabSize,
		HiddenSize: c.Hidden, IntermediateSize: c.Intermediate, NumHiddenLayers: c.Layers,
		NumAttentionHeads: c.Heads, NumKeyValueHeads: c.KVHeads, MaxPositionEmbeddings: c.MaxSeqLen,
		RMSNormEps: c.RMSEps, RopeTheta: c.RopeTheta, TieWordEmbeddings: c.TieEmbeddings,
		InitializerRange: c.InitStd, HiddenAct: "silu", TorchDType: "float32"}
	if eos >= 0 {
		h.BOSTokenID, h.EOSTokenID = &eos, &eos
	}
	return h
}

// WriteHFConfig writes config.json.
func WriteHFConfig(w io.Writer, c Config, eos int) error {
	js, err := json.MarshalIndent(c.HF(eos), "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(js, '\n'))
	return err
}

// ReadHFConfig reads a LlamaConfig config.json into a Config.
func ReadHFConfig(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	h := HFConfig{RMSNormEps: 1e-6, RopeTheta: 10000, InitializerRange: 0.02, HiddenAct: "silu"}
	if err := json.Unmarshal(raw, &h); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if h.ModelType != "" && h.ModelType != "llama" {
		return Config{}, fmt.Errorf("config %s: model_type %q is not llama", path, h.ModelType)
	}
	if h.HiddenAct != "silu" {
		return Config{}, fmt.Errorf("config %s: hidden_act %q is not silu", path, h.HiddenAct)
	}
	if h.AttentionBias || h.MLPBias {
		return Config{}, fmt.Errorf("config %s: attention or MLP biases are not supported", path)
	}
	if h.NumKeyValueHeads == 0 {
		h.NumKeyValueHeads = h.NumAttentionHeads
	}
	c := Config{VocabSize: h.VocabSize, Hidden: h.HiddenSize, Intermediate: h.IntermediateSize,
		Layers: h.NumHiddenLayers, Heads: h.NumAttentionHeads, KVHeads: h.NumKeyValueHeads,
		MaxSeqLen: h.MaxPositionEmbeddings, RopeTheta: h.RopeTheta, RMSEps: h.RMSNormEps,
		TieEmbeddings: h.TieWordEmbeddings, InitStd: h.InitializerRange}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// WeightTensors downloads every weight under its HF name (lm_head is absent
// when tied, as transformers expects).
func (m *Model) WeightTensors() ([]NamedTensor, error) {
	var out []NamedTensor
	for _, p := range m.Params {
		data, err := m.be.Download(p.Updatable())
		if err != nil {
			return nil, fmt.Errorf("download %s: %w", p.Name, err)
		}
		out = append(out, NamedTensor{Name: p.Name, Shape: p.W.Shape, Data: data})
	}
	return out, nil
}

// LoadWeights fills every parameter from an open safetensors file, checking
// names and shapes. Extra tensors are an error unless they are HF buffers
// that compact does not use (rotary inv_freq).
func (m *Model) LoadWeights(s *SafetensorsFile) error {
	for _, p := range m.Params {
		ti, ok := s.Tensors[p.Name]
		if !ok {
			return fmt.Errorf("safetensors %s: missing tensor %s", s.Path, p.Name)
		}
		if !sameShape(ti.Shape, p.W.Shape) {
			return fmt.Errorf("safetensors %s: tensor %s has shape %v, the model needs %v", s.Path, p.Name, ti.Shape, p.W.Shape)
		}
		data, err := s.Float32(p.Name)
		if err != nil {
			return err
		}
		if err := m.be.Upload(p.Updatable(), data); err != nil {
			return fmt.Errorf("upload %s: %w", p.Name, err)
		}
	}
	return m.SyncWeights()
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
