// Fuzz target for the tokenizer.json loader: any file is refused with an
// error or gives a tokenizer whose Encode/Decode neither panic nor produce
// ids outside its vocabulary.

package data

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzHFTokenizer(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "hf", "*", "tokenizer.json"))
	for _, p := range seeds {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, "Hello world, 123 héllo </s> <|endoftext|>")
	}
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}}`), "abba")
	f.Add([]byte(`{"model":{"vocab":{"a":0},"merges":[["a","a"]]},"added_tokens":[{"id":5,"content":"</s>","special":true}]}`), "a</s>a")
	f.Add([]byte(`{}`), "")
	f.Fuzz(func(t *testing.T, raw []byte, text string) {
		tok, err := parseHFTokenizer(raw)
		if err != nil {
			return
		}
		n := tok.VocabSize()
		if n <= 0 || int(tok.EOT()) >= n {
			t.Fatalf("vocab size %d, EOT %d", n, tok.EOT())
		}
		for _, ids := range [][]uint32{tok.Encode(text), tok.EncodeSpecial(text)} {
			for _, id := range ids {
				if int(id) >= n {
					t.Fatalf("id %d >= vocab size %d for %q", id, n, text)
				}
			}
			tok.Decode(ids)
		}
		tok.Decode([]uint32{0, tok.EOT(), uint32(n), 1 << 31})
	})
}
