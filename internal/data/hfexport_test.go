package data

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Issue 21 item 7: the tokenizer.json a checkpoint carries loads (here
// through the loader checked against the `tokenizers` library) and encodes
// and decodes exactly as the tokenizer the run used.
func TestHFTokenizerJSONRoundTrip(t *testing.T) {
	texts := []string{"Hello world, it's 2024!", "  leading spaces\n\n\tand tabs", "héllo 世界 🙂 naïve café",
		"x<|endoftext|>y", "'s 're 'll  123456789 ...!!!", ""}
	srcs, _ := filepath.Glob(filepath.Join(goRoot(t), "src", "strings", "*.go"))
	for _, p := range srcs[:min(4, len(srcs))] {
		b, _ := os.ReadFile(p)
		texts = append(texts, string(b))
	}
	for _, name := range []string{"gpt2", "byte", filepath.Join("testdata", "hf", "llama3", "tokenizer.json")} {
		tok := mustTokenizer(t, name)
		raw, err := HFTokenizerJSON(tok)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p := filepath.Join(t.TempDir(), "tokenizer.json")
		os.WriteFile(p, raw, 0o644)
		back, err := NewTokenizer(p)
		if err != nil {
			t.Fatalf("%s: the written tokenizer.json does not load: %v", name, err)
		}
		if back.EOT() != tok.EOT() || back.VocabSize() != tok.VocabSize() {
			t.Errorf("%s: EOT %d vocab %d, want %d %d", name, back.EOT(), back.VocabSize(), tok.EOT(), tok.VocabSize())
		}
		for _, s := range texts {
			want, got := tok.Encode(s), back.Encode(s)
			if !slices.Equal(got, want) {
				t.Errorf("%s: %.40q encodes to %d ids, want %d", name, s, len(got), len(want))
				continue
			}
			if d := back.Decode(want); d != s {
				t.Errorf("%s: decodes %.40q as %.40q", name, s, d)
			}
		}
	}
}
