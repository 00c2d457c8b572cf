package model

// HuggingFace interoperability: config.json in LlamaConfig form and weights
// in model.safetensors under HF parameter names.

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
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
	BOSTokenID            *TokenID `json:"bos_token_id,omitempty"`
	EOSTokenID            *TokenID `json:"eos_token_id,omitempty"`

	// Sequence classification (LlamaForSequenceClassification): transformers
	// picks the hidden state of the last token whose id != pad_token_id.
	PadTokenID *TokenID          `json:"pad_token_id,omitempty"`
	NumLabels  int               `json:"num_labels,omitempty"`
	ID2Label   map[string]string `json:"id2label,omitempty"`
	Label2ID   map[string]int    `json:"label2id,omitempty"`

	// Read only, to refuse what compact does not implement.
	RopeScaling json.RawMessage `json:"rope_scaling,omitempty"`
	HeadDim     int             `json:"head_dim,omitempty"`
}

// Architecture names in config.json.
const (
	ArchCausalLM       = "LlamaForCausalLM"
	ArchClassification = "LlamaForSequenceClassification"
)

// HF returns c as a LlamaConfig; eos < 0 leaves the special tokens unset.
func (c Config) HF(eos int) HFConfig {
	h := HFConfig{Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama", VocabSize: c.VocabSize,
		HiddenSize: c.Hidden, IntermediateSize: c.Intermediate, NumHiddenLayers: c.Layers,
		NumAttentionHeads: c.Heads, NumKeyValueHeads: c.KVHeads, MaxPositionEmbeddings: c.MaxSeqLen,
		RMSNormEps: c.RMSEps, RopeTheta: c.RopeTheta, TieWordEmbeddings: c.TieEmbeddings,
		InitializerRange: c.InitStd, HiddenAct: "silu", TorchDType: "float32"}
	if eos >= 0 {
		id := TokenID(eos)
		h.BOSTokenID, h.EOSTokenID = &id, &id
	}
	return h
}

// TokenID is a special-token id in config.json. Some models list several
// end-of-sequence ids ([128001, 128009]); the first one is taken.
type TokenID int

// UnmarshalJSON accepts an integer or a non-empty list of integers.
func (t *TokenID) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*t = TokenID(n)
		return nil
	}
	var list []int
	if err := json.Unmarshal(b, &list); err != nil || len(list) == 0 {
		return fmt.Errorf("token id %s: want an integer or a list of integers", b)
	}
	*t = TokenID(list[0])
	return nil
}

// WriteHFConfig writes config.json.
func WriteHFConfig(w io.Writer, c Config, eos int) error {
	return writeHF(w, c.HF(eos))
}

// HF returns the model's config.json: a causal LM, or with a classification
// head LlamaForSequenceClassification with num_labels, id2label and
// pad_token_id = eos (compact pads classification batches with the
// end-of-text token and never puts it inside a text, so transformers' "last
// token that is not padding" is the row compact's head reads).
func (m *Model) HF(eos int) HFConfig {
	h := m.Cfg.HF(eos)
	if n := m.Opts.NumLabels; n > 0 {
		h.Architectures = []string{ArchClassification}
		h.NumLabels = n
		h.ID2Label, h.Label2ID = map[string]string{}, map[string]int{}
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("LABEL_%d", i)
			h.ID2Label[fmt.Sprint(i)], h.Label2ID[name] = name, i
		}
		if eos >= 0 {
			id := TokenID(eos)
			h.PadTokenID = &id
		}
	}
	return h
}

// WriteHFConfig writes the model's config.json (see HF).
func (m *Model) WriteHFConfig(w io.Writer, eos int) error { return writeHF(w, m.HF(eos)) }

func writeHF(w io.Writer, h HFConfig) error {
	js, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(js, '\n'))
	return err
}

// ReadHFConfig reads a LlamaConfig config.json into a Config.
func ReadHFConfig(path string) (Config, error) {
	c, _, err := ReadHFConfigFull(path)
	return c, err
}

// ReadHFConfigFull reads config.json and also returns it as written, for the
// head (architectures, num_labels, pad_token_id) and the special tokens.
func ReadHFConfigFull(path string) (Config, HFConfig, error) {
	c, h, err := readHFConfig(path)
	if err != nil {
		return Config{}, HFConfig{}, err
	}
	if h.NumLabels == 0 && len(h.ID2Label) > 0 {
		h.NumLabels = len(h.ID2Label) // transformers stores the labels, not always num_labels
	}
	return c, h, nil
}

// IsClassifier reports whether config.json describes a sequence classifier.
func (h HFConfig) IsClassifier() bool {
	for _, a := range h.Architectures {
		if a == ArchClassification {
			return true
		}
	}
	return false
}

func readHFConfig(path string) (Config, HFConfig, error) {
	raw, err := readRegular(path)
	if err != nil {
		return Config{}, HFConfig{}, err
	}
	h := HFConfig{RMSNormEps: 1e-6, RopeTheta: 10000, InitializerRange: 0.02, HiddenAct: "silu"}
	if err := json.Unmarshal(raw, &h); err != nil {
		return Config{}, h, fmt.Errorf("config %s: %w", path, err)
	}
	if len(h.RopeScaling) > 0 && string(h.RopeScaling) != "null" {
		return Config{}, h, fmt.Errorf("config %s: rope_scaling %s is not supported (plain RoPE only)", path, h.RopeScaling)
	}
	if h.HeadDim != 0 && h.NumAttentionHeads > 0 && h.HeadDim*h.NumAttentionHeads != h.HiddenSize {
		return Config{}, h, fmt.Errorf("config %s: head_dim %d times num_attention_heads %d is not hidden_size %d (not supported)",
			path, h.HeadDim, h.NumAttentionHeads, h.HiddenSize)
	}
	if h.ModelType != "" && h.ModelType != "llama" {
		return Config{}, h, fmt.Errorf("config %s: model_type %q is not llama", path, h.ModelType)
	}
	if h.HiddenAct != "silu" {
		return Config{}, h, fmt.Errorf("config %s: hidden_act %q is not silu", path, h.HiddenAct)
	}
	if h.AttentionBias || h.MLPBias {
		return Config{}, h, fmt.Errorf("config %s: attention or MLP biases are not supported", path)
	}
	if h.NumKeyValueHeads == 0 {
		h.NumKeyValueHeads = h.NumAttentionHeads
	}
	c := Config{VocabSize: h.VocabSize, Hidden: h.HiddenSize, Intermediate: h.IntermediateSize,
		Layers: h.NumHiddenLayers, Heads: h.NumAttentionHeads, KVHeads: h.NumKeyValueHeads,
		MaxSeqLen: h.MaxPositionEmbeddings, RopeTheta: h.RopeTheta, RMSEps: h.RMSNormEps,
		TieEmbeddings: h.TieWordEmbeddings, InitStd: h.InitializerRange}
	if err := c.Validate(); err != nil {
		return Config{}, h, fmt.Errorf("config %s: %w", path, err)
	}
	return c, h, nil
}

// WeightTensors downloads every weight under its HF name (lm_head is absent
// when tied, as transformers expects).
func (m *Model) WeightTensors() ([]NamedTensor, error) {
	var out []NamedTensor
	for _, p := range m.Params {
		data, shape, err := m.ReadParam(p, p.updatable())
		if err != nil {
			return nil, err
		}
		out = append(out, NamedTensor{Name: p.Name, Shape: shape, Data: data})
	}
	return out, nil
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

// SetLabels replaces the generic LABEL_i names of a classifier's id2label
// and label2id by names (id order); nil keeps them.
func (h *HFConfig) SetLabels(names []string) {
	if len(names) == 0 || h.NumLabels != len(names) {
		return
	}
	h.ID2Label, h.Label2ID = map[string]string{}, map[string]int{}
	for i, s := range names {
		h.ID2Label[fmt.Sprint(i)], h.Label2ID[s] = s, i
	}
}

// LabelNames returns id2label's names in id order, or nil when they are
// the generic LABEL_i that transformers (and compact) write for unnamed
// classes. An id2label that does not number 0..n-1 once each, or names a
// class twice, is an error.
func (h HFConfig) LabelNames() ([]string, error) {
	if len(h.ID2Label) == 0 {
		return nil, nil
	}
	names := make([]string, len(h.ID2Label))
	seen := map[string]bool{}
	generic := true
	for k, v := range h.ID2Label {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= len(names) || names[i] != "" {
			return nil, fmt.Errorf("id2label key %q: want the ids 0..%d once each", k, len(names)-1)
		}
		if v == "" || seen[v] {
			return nil, fmt.Errorf("id2label %q: %q is empty or names two classes", k, v)
		}
		names[i], seen[v] = v, true
		generic = generic && v == fmt.Sprintf("LABEL_%d", i)
	}
	if h.NumLabels != 0 && h.NumLabels != len(names) {
		return nil, fmt.Errorf("id2label names %d classes, num_labels is %d", len(names), h.NumLabels)
	}
	if generic {
		return nil, nil
	}
	return names, nil
}

// Write writes h as config.json.
func (h HFConfig) Write(w io.Writer) error { return writeHF(w, h) }
