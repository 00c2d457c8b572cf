package model

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/gpu/cpu"
)

// hfDir writes m's weights (plus extra tensors) as an HF directory: one
// file, or shards of about shardBytes when shardBytes > 0.
func hfDir(t *testing.T, m *Model, dtype string, shardBytes int64, edit func([]NamedTensor) []NamedTensor) string {
	t.Helper()
	dir := t.TempDir()
	ws, err := m.WeightTensors()
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		ws = edit(ws)
	}
	f, err := os.Create(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WriteHFConfig(f, 10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if shardBytes > 0 {
		if err := WriteShardedWeights(dir, ws, shardBytes, dtype); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	f, err = os.Create(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := WriteSafetensorsAs(f, ws, dtype); err != nil {
		t.Fatal(err)
	}
	return dir
}

func loadDir(t *testing.T, dir string, opts Options) (*Model, error) {
	t.Helper()
	cfg, _, err := ReadHFConfigFull(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	m, err := New(cpu.New(1), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	src, err := OpenWeights(dir)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	_, err = m.LoadBase(src)
	return m, err
}

func weightsOf(t *testing.T, m *Model) map[string][]float32 {
	t.Helper()
	ws, err := m.WeightTensors()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for _, w := range ws {
		out[w.Name] = w.Data
	}
	return out
}

// TestLoadHFDirectories loads single-file, sharded and bf16 directories,
// tied and untied, and checks every weight.
func TestLoadHFDirectories(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tied   bool
		dtype  string
		shards int64
		extra  bool // HF buffers and a tied lm_head copy
	}{
		{"single-f32-untied", false, "F32", 0, false},
		{"sharded-f32-untied", false, "F32", 600, true},
		{"single-bf16-tied", true, "BF16", 0, true},
		{"sharded-bf16-tied", true, "BF16", 1000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.TieEmbeddings = tc.tied
			src := newTestModel(t, cpu.New(1), cfg, Options{})
			want := weightsOf(t, src)
			dir := hfDir(t, src, tc.dtype, tc.shards, func(ws []NamedTensor) []NamedTensor {
				if !tc.extra {
					return ws
				}
				ws = append(ws, NamedTensor{Name: "model.layers.0.self_attn.rotary_emb.inv_freq", Shape: []int{2}, Data: []float32{1, 0.01}})
				if tc.tied {
					ws = append(ws, NamedTensor{Name: "lm_head.weight", Shape: ws[0].Shape, Data: ws[0].Data})
				}
				return ws
			})
			if tc.shards > 0 {
				if m, _ := filepath.Glob(filepath.Join(dir, "model-*-of-*.safetensors")); len(m) < 2 {
					t.Fatalf("%d shards written, want several", len(m))
				}
			}
			m, err := loadDir(t, dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got := weightsOf(t, m)
			for name, w := range want {
				g := got[name]
				for i := range w {
					x := w[i]
					if tc.dtype == "BF16" {
						x = bf16(x)
					}
					if g[i] != x {
						t.Fatalf("%s[%d] = %g, want %g", name, i, g[i], x)
					}
				}
			}
		})
	}
}

// TestLoadHFDirectoryErrors: every corrupt directory is an error naming
// what is wrong, never a panic.
func TestLoadHFDirectoryErrors(t *testing.T) {
	cfg := testConfig()
	src := newTestModel(t, cpu.New(1), cfg, Options{})
	drop := func(name string) func([]NamedTensor) []NamedTensor {
		return func(ws []NamedTensor) []NamedTensor {
			var out []NamedTensor
			for _, w := range ws {
				if w.Name != name {
					out = append(out, w)
				}
			}
			return out
		}
	}
	cases := []struct {
		name string
		dir  func() string
		want string
	}{
		{"missing tensor", func() string { return hfDir(t, src, "F32", 0, drop("model.layers.1.mlp.up_proj.weight")) },
			"missing tensor model.layers.1.mlp.up_proj.weight"},
		{"wrong shape", func() string {
			return hfDir(t, src, "F32", 0, func(ws []NamedTensor) []NamedTensor {
				for i := range ws {
					if ws[i].Name == "model.norm.weight" {
						ws[i].Shape = []int{2, 4}
					}
				}
				return ws
			})
		}, "has shape [2 4]"},
		{"unexpected tensor", func() string {
			return hfDir(t, src, "F32", 0, func(ws []NamedTensor) []NamedTensor {
				return append(ws, NamedTensor{Name: "model.layers.0.self_attn.q_proj.bias", Shape: []int{8}, Data: make([]float32, 8)})
			})
		}, "unexpected tensor model.layers.0.self_attn.q_proj.bias"},
		{"truncated file", func() string {
			d := hfDir(t, src, "F32", 0, nil)
			p := filepath.Join(d, WeightsFile)
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()-10)
			return d
		}, "truncated"},
		{"truncated shard", func() string {
			d := hfDir(t, src, "F32", 600, nil)
			p := filepath.Join(d, "model-00002-of-")
			m, _ := filepath.Glob(p + "*")
			os.Truncate(m[0], 100)
			return d
		}, "model-00002-of-"},
		{"bad index JSON", func() string {
			d := hfDir(t, src, "F32", 600, nil)
			os.WriteFile(filepath.Join(d, WeightsIndex), []byte(`{"weight_map": [`), 0o644)
			return d
		}, "not a valid index"},
		{"index without weight_map", func() string {
			d := hfDir(t, src, "F32", 600, nil)
			os.WriteFile(filepath.Join(d, WeightsIndex), []byte(`{"metadata": {}}`), 0o644)
			return d
		}, "weight_map is missing"},
		{"index names a missing shard", func() string {
			d := hfDir(t, src, "F32", 600, nil)
			m, _ := filepath.Glob(filepath.Join(d, "model-00001-of-*"))
			os.Remove(m[0])
			return d
		}, "model-00001-of-"},
		{"index outside the directory", func() string {
			d := hfDir(t, src, "F32", 600, nil)
			raw, _ := os.ReadFile(filepath.Join(d, WeightsIndex))
			os.WriteFile(filepath.Join(d, WeightsIndex), []byte(strings.Replace(string(raw), `"model-00001`, `"../model-00001`, 1)), 0o644)
			return d
		}, "not a file name"},
		{"tied head differs", func() string {
			c := cfg
			c.TieEmbeddings = true
			tied := newTestModel(t, cpu.New(1), c, Options{})
			return hfDir(t, tied, "F32", 0, func(ws []NamedTensor) []NamedTensor {
				return append(ws, NamedTensor{Name: "lm_head.weight", Shape: ws[0].Shape, Data: make([]float32, len(ws[0].Data))})
			})
		}, "differs from model.embed_tokens.weight"},
		{"no weights", func() string {
			d := hfDir(t, src, "F32", 0, nil)
			os.Remove(filepath.Join(d, WeightsFile))
			return d
		}, "neither model.safetensors nor"},
		{"rope scaling", func() string {
			d := hfDir(t, src, "F32", 0, nil)
			raw, _ := os.ReadFile(filepath.Join(d, ConfigFile))
			os.WriteFile(filepath.Join(d, ConfigFile), []byte(strings.Replace(string(raw), "{", `{"rope_scaling": {"type": "linear", "factor": 2},`, 1)), 0o644)
			return d
		}, "rope_scaling"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadDir(t, tc.dir(), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestLoadBaseIntoClassifier: a causal base under a new classification
// head keeps the head's initialisation and drops lm_head; the classifier's
// config.json and weights load back as a classifier.
func TestLoadBaseIntoClassifier(t *testing.T) {
	cfg := testConfig()
	base := newTestModel(t, cpu.New(1), cfg, Options{})
	dir := hfDir(t, base, "F32", 0, nil)
	c, h, err := ReadHFConfigFull(filepath.Join(dir, ConfigFile))
	if err != nil || h.IsClassifier() {
		t.Fatalf("config: %v, classifier %v", err, h.IsClassifier())
	}
	m, err := New(cpu.New(1), c, Options{NumLabels: 4})
	if err != nil {
		t.Fatal(err)
	}
	m.Init(1)
	src, _ := OpenWeights(dir)
	defer src.Close()
	init, err := m.LoadBase(src)
	if err != nil || len(init) != 1 || init[0] != "score.weight" {
		t.Fatalf("LoadBase: initialised %v, err %v", init, err)
	}
	if err := m.LoadWeights(src); err == nil {
		t.Error("strict load of a causal LM into a classifier succeeded")
	}
	cdir := hfDir(t, m, "F32", 0, nil)
	_, h, err = ReadHFConfigFull(filepath.Join(cdir, ConfigFile))
	if err != nil || !h.IsClassifier() || h.NumLabels != 4 || h.PadTokenID == nil || *h.PadTokenID != 10 {
		t.Fatalf("classifier config.json: %+v, %v", h, err)
	}
	if _, err := loadDir(t, cdir, Options{NumLabels: 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := loadDir(t, cdir, Options{NumLabels: 3}); err == nil || !strings.Contains(err.Error(), "score.weight has shape") {
		t.Fatalf("num_labels mismatch: %v", err)
	}
}

func TestHFConfigTokenLists(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, ConfigFile)
	os.WriteFile(p, []byte(`{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":32,"hidden_size":8,
"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"max_position_embeddings":16,
"eos_token_id":[5,6],"bos_token_id":1,"rope_scaling":null,"head_dim":4}`), 0o644)
	_, h, err := ReadHFConfigFull(p)
	if err != nil || h.EOSTokenID == nil || *h.EOSTokenID != 5 {
		t.Fatalf("config with an eos list: %+v %v", h, err)
	}
}
