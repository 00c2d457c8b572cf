package model

// Weight sources: one safetensors file, or a HuggingFace model directory
// holding model.safetensors or a sharded set named by
// model.safetensors.index.json ({"metadata": ..., "weight_map": {tensor:
// file}}). Loading checks every name and shape against the model before
// anything is used, so a wrong or corrupt directory is an error naming the
// file and tensor, never a half-loaded model.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// TensorSource is a set of named tensors readable as float32.
type TensorSource interface {
	// Lookup returns a tensor's header entry and the file that holds it.
	Lookup(name string) (TensorInfo, string, bool)
	Float32(name string) ([]float32, error)
	Names() []string
	Close() error
}

// Lookup implements TensorSource.
func (s *SafetensorsFile) Lookup(name string) (TensorInfo, string, bool) {
	ti, ok := s.Tensors[name]
	return ti, s.Path, ok
}

// Names lists the tensors, sorted.
func (s *SafetensorsFile) Names() []string {
	out := make([]string, 0, len(s.Tensors))
	for n := range s.Tensors {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Weight file names of a HuggingFace model directory.
const (
	WeightsFile  = "model.safetensors"
	WeightsIndex = "model.safetensors.index.json"
	ConfigFile   = "config.json"
)

// shardedSource is a sharded checkpoint: every tensor lives in the file the
// index names.
type shardedSource struct {
	index string
	files map[string]*SafetensorsFile // by file name
	where map[string]*SafetensorsFile // by tensor name
}

func (s *shardedSource) Lookup(name string) (TensorInfo, string, bool) {
	f, ok := s.where[name]
	if !ok {
		return TensorInfo{}, s.index, false
	}
	ti, path, _ := f.Lookup(name)
	return ti, path, true
}

func (s *shardedSource) Float32(name string) ([]float32, error) {
	f, ok := s.where[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %s", s.index, name)
	}
	return f.Float32(name)
}

func (s *shardedSource) Names() []string {
	out := make([]string, 0, len(s.where))
	for n := range s.where {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (s *shardedSource) Close() error {
	var first error
	for _, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// OpenWeights opens the weights of a model directory: model.safetensors
// when present (as transformers prefers it), else the shards named by
// model.safetensors.index.json.
func OpenWeights(dir string) (TensorSource, error) {
	single := filepath.Join(dir, WeightsFile)
	if _, err := os.Stat(single); err == nil {
		return OpenSafetensors(single)
	}
	index := filepath.Join(dir, WeightsIndex)
	raw, err := readRegular(index)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%s: neither %s nor %s (is this a model directory?)", dir, WeightsFile, WeightsIndex)
		}
		return nil, err
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("%s: not a valid index: %w", index, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: weight_map is missing or empty", index)
	}
	s := &shardedSource{index: index, files: map[string]*SafetensorsFile{}, where: map[string]*SafetensorsFile{}}
	names := make([]string, 0, len(idx.WeightMap))
	for n := range idx.WeightMap {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		file := idx.WeightMap[name]
		// Shards live beside the index; a path elsewhere is refused rather
		// than followed.
		if file == "" || file != filepath.Base(file) || file == "." || file == ".." {
			s.Close()
			return nil, fmt.Errorf("%s: tensor %s maps to %q, which is not a file name in %s", index, name, file, dir)
		}
		f, ok := s.files[file]
		if !ok {
			var err error
			if f, err = OpenSafetensors(filepath.Join(dir, file)); err != nil {
				s.Close()
				return nil, fmt.Errorf("%s: shard of %s: %w", index, name, err)
			}
			s.files[file] = f
		}
		if _, ok := f.Tensors[name]; !ok {
			s.Close()
			return nil, fmt.Errorf("%s: tensor %s is mapped to %s, which does not hold it", index, name, f.Path)
		}
		s.where[name] = f
	}
	return s, nil
}

// ignoredBuffer reports whether an HF tensor is a buffer compact recomputes
// (rotary inverse frequencies) rather than a weight.
func ignoredBuffer(name string) bool {
	return strings.HasSuffix(name, hfRotaryBuffer)
}

// loadParam reads one tensor into p after checking its shape.
func (m *Model) loadParam(src TensorSource, p *Param, name string) error {
	ti, file, ok := src.Lookup(name)
	if !ok {
		return fmt.Errorf("%s: missing tensor %s", file, name)
	}
	if !sameShape(ti.Shape, p.hfShape) {
		return fmt.Errorf("%s: tensor %s has shape %v, the model needs %v", file, name, ti.Shape, p.hfShape)
	}
	data, err := src.Float32(name)
	if err != nil {
		return err
	}
	if err := CheckFinite(name, data); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	m.roundWeights(data)
	if err := m.WriteParam(p, p.updatable(), data); err != nil {
		return fmt.Errorf("upload %s: %w", p.Name, err)
	}
	return nil
}

// LoadWeights fills every parameter from src, checking names and shapes:
// the strict load of our own checkpoints. Extra tensors are an error unless
// they are HF buffers compact does not use (rotary inv_freq).
func (m *Model) LoadWeights(src TensorSource) error {
	_, err := m.load(src, false)
	return err
}

// LoadBase fills the model from a base checkpoint for fine-tuning. Unlike
// LoadWeights it lets a classification head that the base lacks keep its
// initialisation (the returned names), and ignores a base's LM head when
// the model is a classifier (and a base's classification head when it is a
// causal LM). With tied embeddings, a stored lm_head.weight must equal the
// embedding.
func (m *Model) LoadBase(src TensorSource) (initialised []string, err error) {
	return m.load(src, true)
}

func (m *Model) load(src TensorSource, base bool) ([]string, error) {
	used := map[string]bool{}
	var initialised []string
	for _, p := range m.Params {
		if _, _, ok := src.Lookup(p.Name); !ok && base && p == m.score {
			initialised = append(initialised, p.Name)
			continue
		}
		if err := m.loadParam(src, p, p.Name); err != nil {
			return nil, err
		}
		used[p.Name] = true
	}
	const head = hfLMHead
	if ti, file, ok := src.Lookup(head); ok && !used[head] {
		switch {
		case m.score != nil && base:
			// a causal base under a new classification head
		case m.Cfg.TieEmbeddings:
			if !sameShape(ti.Shape, m.wte.W.Shape) {
				return nil, fmt.Errorf("%s: tensor %s has shape %v, the embedding has %v", file, head, ti.Shape, m.wte.W.Shape)
			}
			a, err := src.Float32(head)
			if err != nil {
				return nil, err
			}
			b, err := src.Float32(m.wte.Name)
			if err != nil {
				return nil, err
			}
			if !slices.Equal(a, b) {
				return nil, fmt.Errorf("%s: tie_word_embeddings is true but %s differs from %s", file, head, m.wte.Name)
			}
		default:
			return nil, fmt.Errorf("%s: unexpected tensor %s", file, head)
		}
		used[head] = true
	}
	for _, name := range src.Names() {
		if used[name] || ignoredBuffer(name) || (base && m.score == nil && name == hfScore) {
			continue
		}
		_, file, _ := src.Lookup(name)
		return nil, fmt.Errorf("%s: unexpected tensor %s (not a LLaMA weight of this model)", file, name)
	}
	return initialised, m.SyncWeights()
}

// WriteShardedWeights writes tensors as a sharded HF checkpoint in dir:
// model-0000i-of-0000n.safetensors files of at most about shardBytes each
// (a tensor is never split) and model.safetensors.index.json.
func WriteShardedWeights(dir string, tensors []NamedTensor, shardBytes int64, dtype string) error {
	es := dtypeSize[dtype]
	var shards [][]NamedTensor
	var cur int64
	for _, t := range tensors {
		n := int64(len(t.Data)) * es
		if len(shards) == 0 || (cur > 0 && cur+n > shardBytes) {
			shards = append(shards, nil)
			cur = 0
		}
		shards[len(shards)-1] = append(shards[len(shards)-1], t)
		cur += n
	}
	weightMap := map[string]string{}
	var total int64
	for i, sh := range shards {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		err = WriteSafetensorsAs(f, sh, dtype)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		for _, t := range sh {
			weightMap[t.Name] = name
			total += int64(len(t.Data)) * es
		}
	}
	js, err := json.MarshalIndent(map[string]any{"metadata": map[string]int64{"total_size": total}, "weight_map": weightMap}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, WeightsIndex), append(js, '\n'), 0o644)
}
