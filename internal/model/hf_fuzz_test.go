// Fuzz target for the config.json reader: any file is refused with an
// error naming it or read into a model config that passes validation,
// never a panic.

package model

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzHFConfig(f *testing.F) {
	c := Config{VocabSize: 257, Hidden: 32, Intermediate: 64, Layers: 2, Heads: 2, KVHeads: 1, MaxSeqLen: 32,
		RopeTheta: 10000, RMSEps: 1e-6, InitStd: 0.02}
	var good bytes.Buffer
	if err := c.HF(256).Write(&good); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	h := c.HF(256)
	h.SetLabels([]string{"neg", "pos"})
	var cls bytes.Buffer
	if err := h.Write(&cls); err != nil {
		f.Fatal(err)
	}
	f.Add(cls.Bytes())
	f.Add(append([]byte("\ufeff"), good.Bytes()...))
	f.Add([]byte(`{"hidden_size":4096,"num_attention_heads":0,"vocab_size":-1}`))
	f.Add([]byte(`{"rope_scaling":{"type":"linear"},"head_dim":7,"eos_token_id":[1,2]}`))
	f.Add([]byte(`{"id2label":{"x":"a"},"num_labels":1e30,"pad_token_id":"x"}`))
	f.Add([]byte(`[]`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(dir, ConfigFile)
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		c, _, err := ReadHFConfigFull(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("read config fails validation: %v", err)
		}
	})
}
