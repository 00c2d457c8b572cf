// Tests of HuggingFace tokenizer.json support against golden files written
// by scripts/hf_tokenizer_golden.py with the `tokenizers` library: each
// testdata/hf/NAME/ holds a tokenizer.json trained by that script and a
// golden.json of the library's ids and decodings.

package data

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

type hfGoldenCase struct {
	Text         string   `json:"text"`
	IDs          []uint32 `json:"ids"`
	Decoded      string   `json:"decoded"`
	IDsPlain     []uint32 `json:"ids_plain"`
	DecodedPlain *string  `json:"decoded_plain"`
	IDsPost      []uint32 `json:"ids_post"`
	Tokens       []string `json:"tokens"`
	Pretokens    []string `json:"pretokens"`
}

type hfGolden struct {
	Name                  string             `json:"name"`
	TokenizersVersion     string             `json:"tokenizers_version"`
	EncodeSpecialSupports bool               `json:"encode_special_tokens_supported"`
	VocabSize             int                `json:"vocab_size"`
	SpecialIDs            map[string]*uint32 `json:"special_ids"`
	Cases                 []hfGoldenCase     `json:"cases"`
	SingleDecoded         []string           `json:"single_decoded"`
	DecodeCases           []struct {
		IDs     []uint32 `json:"ids"`
		Decoded string   `json:"decoded"`
	} `json:"decode_cases"`
}

// hfGoldenDirs lists testdata/hf/*/ holding a tokenizer.json and golden.json.
func hfGoldenDirs(t *testing.T) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join("testdata", "hf", "*", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) == 0 {
		t.Fatal("no golden files under testdata/hf")
	}
	var dirs []string
	for _, g := range m {
		dirs = append(dirs, filepath.Dir(g))
	}
	return dirs
}

func readHFGolden(t *testing.T, dir string) *hfGolden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g hfGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return &g
}

func loadHF(t *testing.T, path string) *HFTokenizer {
	t.Helper()
	tok, err := LoadHFTokenizer(path)
	if err != nil {
		t.Fatal(err)
	}
	return tok.(*HFTokenizer)
}

func sameIDs(a, b []uint32) bool { return len(a) == len(b) && (len(a) == 0 || slices.Equal(a, b)) }

// wantEOT is the EOT each golden tokenizer must report.
var wantEOT = map[string]string{
	"gpt2": "<|endoftext|>", "gpt2_prefix": "<|endoftext|>",
	"llama3": "<|end_of_text|>", "qwen2": "<|end_of_text|>",
	"llama2": "</s>", "llama2_metaspace": "</s>", "mistral_metaspace": "</s>",
	"gemma3": "</s>", "split_string": "</s>",
}

// TestHFGolden checks every golden id list and decoding of every tokenizer.
func TestHFGolden(t *testing.T) {
	for _, dir := range hfGoldenDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			g := readHFGolden(t, dir)
			// Loaded through NewTokenizer from the directory.
			generic, err := NewTokenizer(dir)
			if err != nil {
				t.Fatal(err)
			}
			tok := generic.(*HFTokenizer)
			if tok.VocabSize() != g.VocabSize {
				t.Errorf("VocabSize %d, want %d", tok.VocabSize(), g.VocabSize)
			}
			if name, ok := wantEOT[g.Name]; ok {
				want := g.SpecialIDs[name]
				if want == nil || tok.EOT() != *want {
					t.Errorf("EOT %d, want %s = %v", tok.EOT(), name, want)
				}
			}
			bos, hasBOS := tok.BOS()
			failures := 0
			fail := func(format string, args ...any) {
				failures++
				if failures <= 15 {
					t.Errorf(format, args...)
				}
			}
			for _, c := range g.Cases {
				if got := tok.EncodeSpecial(c.Text); !sameIDs(got, c.IDs) {
					fail("EncodeSpecial(%q)\n got %v\nwant %v\ntokens %q\npretokens %q", c.Text, got, c.IDs, c.Tokens, c.Pretokens)
				}
				if got := tok.Decode(c.IDs); got != c.Decoded {
					fail("Decode(%v) = %q, want %q", c.IDs, got, c.Decoded)
				}
				if g.EncodeSpecialSupports {
					if got := tok.Encode(c.Text); !sameIDs(got, c.IDsPlain) {
						fail("Encode(%q)\n got %v\nwant %v", c.Text, got, c.IDsPlain)
					}
					if c.DecodedPlain != nil {
						if got := tok.Decode(c.IDsPlain); got != *c.DecodedPlain {
							fail("Decode(%v) = %q, want %q", c.IDsPlain, got, *c.DecodedPlain)
						}
					}
				}
				if c.IDsPost != nil {
					want := c.IDs
					if hasBOS {
						want = append([]uint32{bos}, c.IDs...)
					}
					if !sameIDs(c.IDsPost, want) {
						fail("BOS %d (%v): with the post-processor %q encodes to %v, not BOS+ids %v", bos, hasBOS, c.Text, c.IDsPost, c.IDs)
					}
				}
			}
			for id, want := range g.SingleDecoded {
				if got := tok.Decode([]uint32{uint32(id)}); got != want {
					fail("Decode([%d]) = %q, want %q", id, got, want)
				}
			}
			for _, c := range g.DecodeCases {
				if got := tok.Decode(c.IDs); got != c.Decoded {
					fail("Decode(%v) = %q, want %q", c.IDs, got, c.Decoded)
				}
			}
			if failures > 0 {
				t.Errorf("%d mismatches with tokenizers %s", failures, g.TokenizersVersion)
			}
			t.Logf("%s: %d cases, %d single ids, %d decode cases match tokenizers %s",
				g.Name, len(g.Cases), len(g.SingleDecoded), len(g.DecodeCases), g.TokenizersVersion)
		})
	}
}

// TestHFBOSAndFamilies checks the per-family settings read from the files.
func TestHFBOSAndFamilies(t *testing.T) {
	for name, want := range map[string]struct {
		bos    string // "" for none
		fallbk bool
	}{
		"gpt2":              {"", false},
		"llama3":            {"<|begin_of_text|>", false},
		"llama2":            {"<s>", true},
		"mistral_metaspace": {"<s>", true},
	} {
		tok := loadHF(t, filepath.Join("testdata", "hf", name, "tokenizer.json"))
		id, ok := tok.BOS()
		if want.bos == "" {
			if ok {
				t.Errorf("%s: BOS %d, want none", name, id)
			}
		} else if wid, _ := tok.TokenID(want.bos); !ok || id != wid {
			t.Errorf("%s: BOS %d %v, want %s (%d)", name, id, ok, want.bos, wid)
		}
		if tok.byteFallback != want.fallbk {
			t.Errorf("%s: byte_fallback %v", name, tok.byteFallback)
		}
		// Special tokens written in the text are text for Encode.
		ids := tok.Encode("a" + tok.Decode([]uint32{tok.EOT()}) + "b")
		if slices.Contains(ids, tok.EOT()) {
			t.Errorf("%s: Encode produced EOT from text: %v", name, ids)
		}
		if !strings.HasPrefix(tok.Name(), "hf-") || len(tok.Name()) != len("hf-")+16 {
			t.Errorf("%s: Name %q", name, tok.Name())
		}
	}
}

// rewriteHF loads a tokenizer.json as generic JSON, edits it and writes it to
// a temporary file.
func rewriteHF(t *testing.T, src string, edit func(j map[string]any)) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	edit(j)
	out, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHFMergesFormats: merges as "a b" strings and as [a, b] pairs give the
// same tokenizer.
func TestHFMergesFormats(t *testing.T) {
	for _, name := range []string{"gpt2", "llama3", "llama2"} {
		src := filepath.Join("testdata", "hf", name, "tokenizer.json")
		g := readHFGolden(t, filepath.Dir(src))
		p := rewriteHF(t, src, func(j map[string]any) {
			model := j["model"].(map[string]any)
			merges := model["merges"].([]any)
			for i, m := range merges {
				switch m := m.(type) {
				case string:
					a, b, _ := strings.Cut(m, " ")
					merges[i] = []any{a, b}
				case []any:
					merges[i] = fmt.Sprintf("%s %s", m[0], m[1])
				}
			}
		})
		orig, other := loadHF(t, src), loadHF(t, p)
		if orig.Name() == other.Name() {
			t.Errorf("%s: rewritten file has the same name %s", name, orig.Name())
		}
		for _, c := range g.Cases {
			if a, b := orig.EncodeSpecial(c.Text), other.EncodeSpecial(c.Text); !sameIDs(a, b) {
				t.Fatalf("%s: %q encodes to %v with one merges format, %v with the other", name, c.Text, a, b)
			}
		}
	}
}

func TestHFNames(t *testing.T) {
	seen := map[string]string{}
	for _, dir := range hfGoldenDirs(t) {
		tok := loadHF(t, filepath.Join(dir, "tokenizer.json"))
		if again := loadHF(t, filepath.Join(dir, "tokenizer.json")); again.Name() != tok.Name() {
			t.Errorf("%s: name %s then %s", dir, tok.Name(), again.Name())
		}
		if d, dup := seen[tok.Name()]; dup {
			t.Errorf("%s and %s share the name %s", d, dir, tok.Name())
		}
		seen[tok.Name()] = dir
	}
}

func TestNewTokenizerHFPaths(t *testing.T) {
	file := filepath.Join("testdata", "hf", "llama3", "tokenizer.json")
	a, err := NewTokenizer(file)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewTokenizer(filepath.Dir(file) + "/")
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() != b.Name() {
		t.Errorf("file %s, directory %s", a.Name(), b.Name())
	}
	// Any name ending in .json is a path.
	data, _ := os.ReadFile(file)
	for _, base := range []string{"llama3-tokenizer.json", "tok.JSON"} {
		other := filepath.Join(t.TempDir(), base)
		if err := os.WriteFile(other, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if c, err := NewTokenizer(other); err != nil || c.Name() != a.Name() {
			t.Errorf("NewTokenizer(%s) = %v, %v", other, c, err)
		}
	}
	empty := t.TempDir()
	if _, err := NewTokenizer(empty); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("directory without tokenizer.json: %v", err)
	}
	if _, err := NewTokenizer(filepath.Join(empty, "tokenizer.json")); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("missing tokenizer.json: %v", err)
	}
	// The built-in names still work.
	if tok := mustTokenizer(t, "byte"); tok.Name() != "byte" {
		t.Fatal(tok.Name())
	}
}

// TestHFBadFiles: broken files give errors naming the file, never a panic.
func TestHFBadFiles(t *testing.T) {
	src := filepath.Join("testdata", "hf", "gpt2", "tokenizer.json")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	type bad struct {
		path, want string
	}
	cases := []bad{
		{write("notjson-tokenizer.json", "this is not JSON"), "not a tokenizer.json"},
		{write("empty-tokenizer.json", ""), "not a tokenizer.json"},
		{write("nomodel-tokenizer.json", `{"added_tokens": []}`), `no "model"`},
		{write("unigram-tokenizer.json", `{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}`), `"Unigram"`},
		{write("novocab-tokenizer.json", `{"model": {"type": "BPE", "vocab": {}, "merges": []}}`), "no vocab"},
		{write("badmerge-tokenizer.json", `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<|endoftext|>": 3}, "merges": ["a c"]}}`), `"c" is not in the vocabulary`},
		{write("badmerge2-tokenizer.json", `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "<|endoftext|>": 3}, "merges": [["a", "b"]]}}`), `"ab" is not in the vocabulary`},
		{write("badmerge3-tokenizer.json", `{"model": {"type": "BPE", "vocab": {"a": 0, "<|endoftext|>": 3}, "merges": ["a b c"]}}`), "two tokens"},
		{write("noeot-tokenizer.json", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`), "no end-of-text token"},
		{write("badunk-tokenizer.json", `{"model": {"type": "BPE", "vocab": {"a": 0, "</s>": 1}, "merges": [], "unk_token": "<unk>"}}`), "unk_token"},
		{rewriteHF(t, src, func(j map[string]any) { j["pre_tokenizer"] = map[string]any{"type": "Whitespace"} }), `pre-tokenizer "Whitespace" is not supported`},
		{rewriteHF(t, src, func(j map[string]any) {
			j["pre_tokenizer"] = map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\w+|\s+`}, "behavior": "Isolated", "invert": false}
		}), "Split regex"},
		{rewriteHF(t, src, func(j map[string]any) { j["normalizer"] = map[string]any{"type": "BertNormalizer"} }), `normalizer "BertNormalizer"`},
		{rewriteHF(t, src, func(j map[string]any) { j["decoder"] = map[string]any{"type": "WordPiece"} }), `decoder "WordPiece"`},
		{rewriteHF(t, src, func(j map[string]any) { j["model"].(map[string]any)["vocab"] = "oops" }), "model"},
		{filepath.Join(dir, "missing-tokenizer.json"), "no such file"},
	}
	for _, c := range cases {
		tok, err := LoadHFTokenizer(c.path)
		if err == nil {
			t.Errorf("%s: no error", c.path)
			continue
		}
		if tok != nil {
			t.Errorf("%s: tokenizer %v with error", c.path, tok)
		}
		if !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not name the file and %q", c.path, err, c.want)
		}
		if _, err2 := NewTokenizer(c.path); err2 == nil {
			t.Errorf("NewTokenizer(%s): no error", c.path)
		}
	}
}

// TestHFLossyUTF8 checks the U+FFFD substitution of Rust's from_utf8_lossy.
func TestHFLossyUTF8(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"abc", "abc"},
		{"a\xffb", "a\uFFFDb"},
		{"\xe2\x82", "\uFFFD"},                 // truncated 3-byte sequence: one replacement
		{"\xe2\x82a", "\uFFFDa"},               //
		{"\xf0\x9f\x98", "\uFFFD"},             // truncated 4-byte sequence
		{"\xf0\x9f\x98\x80", "😀"},              //
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"}, // surrogate: three
		{"\xe0\x80\x80", "\uFFFD\uFFFD\uFFFD"}, // overlong
		{"\xc3", "\uFFFD"},
		{"\xc3\xa9\x80", "é\uFFFD"},
		{"\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
	} {
		if got := lossyUTF8([]byte(c.in)); got != c.want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestHFConcurrent(t *testing.T) {
	for _, name := range []string{"llama3", "llama2"} {
		tok := loadHF(t, filepath.Join("testdata", "hf", name, "tokenizer.json"))
		g := readHFGolden(t, filepath.Join("testdata", "hf", name))
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k, c := range g.Cases {
					if (k+w)%2 == 0 && !sameIDs(tok.EncodeSpecial(c.Text), c.IDs) {
						t.Errorf("%s: concurrent EncodeSpecial(%q) differs", name, c.Text)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
}

func BenchmarkHFEncode(b *testing.B) {
	docs, n := benchCorpus(b, 2<<20)
	for _, name := range []string{"gpt2", "llama3", "llama2"} {
		b.Run(name, func(b *testing.B) {
			tok, err := LoadHFTokenizer(filepath.Join("testdata", "hf", name, "tokenizer.json"))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(n)
			b.ResetTimer()
			for range b.N {
				for _, d := range docs {
					tok.Encode(d)
				}
			}
		})
	}
}

// TestHFSplitLayouts: the GPT-2 file with its regex moved into a Split
// pre-tokenizer (as LLaMA-3 files hold theirs) and the LLaMA-3 file run
// without fusing Split into ByteLevel still match the goldens.
func TestHFSplitLayouts(t *testing.T) {
	src := filepath.Join("testdata", "hf", "gpt2", "tokenizer.json")
	p := rewriteHF(t, src, func(j map[string]any) {
		j["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": hfGPT2Pattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}}
	})
	split := loadHF(t, p)
	unfused := loadHF(t, filepath.Join("testdata", "hf", "llama3", "tokenizer.json"))
	unfused.preTok = []hfPreTokenizer{hfRegexSplit{llama3Splitter(3)}, hfByteLevel{}}
	for _, c := range []struct {
		tok *HFTokenizer
		dir string
	}{{split, "gpt2"}, {unfused, "llama3"}} {
		for _, gc := range readHFGolden(t, filepath.Join("testdata", "hf", c.dir)).Cases {
			if got := c.tok.EncodeSpecial(gc.Text); !sameIDs(got, gc.IDs) {
				t.Fatalf("%s: EncodeSpecial(%q) = %v, want %v", c.dir, gc.Text, got, gc.IDs)
			}
		}
	}
}

// TestHFUnkAndNFC covers paths the goldens do not: unknown characters without
// byte fallback (fused or not into one <unk>) and an NFC normalizer.
func TestHFUnkAndNFC(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) *HFTokenizer {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return loadHF(t, p)
	}
	const vocab = `"vocab": {"<unk>": 0, "</s>": 1, "a": 2, "b": 3, "é": 4, "ab": 5}, "merges": ["a b"]`
	fused := write("fused.json", `{"model": {"type": "BPE", `+vocab+`, "unk_token": "<unk>", "fuse_unk": true}}`)
	plain := write("plain.json", `{"model": {"type": "BPE", `+vocab+`, "unk_token": "<unk>", "fuse_unk": false}}`)
	none := write("none.json", `{"model": {"type": "BPE", `+vocab+`}}`)
	nfc := write("nfc.json", `{"normalizer": {"type": "NFC"}, "model": {"type": "BPE", `+vocab+`}}`)
	for _, c := range []struct {
		tok  *HFTokenizer
		text string
		want []uint32
	}{
		{fused, "ab", []uint32{5}},
		{fused, "axyb", []uint32{2, 0, 3}},
		{plain, "axyb", []uint32{2, 0, 0, 3}},
		{none, "axyb", []uint32{5}},   // no unk token: dropped (as the library does), then a+b merge
		{none, "e\u0301", []uint32{}}, // not normalized: e and the accent are unknown
		{nfc, "e\u0301", []uint32{4}},
	} {
		if got := c.tok.Encode(c.text); !sameIDs(got, c.want) {
			t.Errorf("%s: Encode(%q) = %v, want %v", c.tok.Path(), c.text, got, c.want)
		}
	}
	// Without a decoder, tokens are joined with spaces.
	if got := none.Decode([]uint32{2, 3, 99}); got != "a b \uFFFD" {
		t.Errorf("Decode = %q", got)
	}
	if none.EOT() != 1 || none.VocabSize() != 6 {
		t.Errorf("EOT %d VocabSize %d", none.EOT(), none.VocabSize())
	}
	if _, ok := none.BOS(); ok {
		t.Error("BOS without one in the file")
	}
}
