// Tests of the tokenizers: known GPT-2 ids, round trips, special tokens and
// names.

package data

import (
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	tiktoken "github.com/tiktoken-go/tokenizer"
)

func mustTokenizer(t testing.TB, name string) Tokenizer {
	t.Helper()
	tok, err := NewTokenizer(name)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestGPT2KnownIDs(t *testing.T) {
	tok := mustTokenizer(t, "gpt2")
	if tok.Name() != "gpt2" || tok.VocabSize() != 50257 || tok.EOT() != 50256 {
		t.Fatalf("name %q vocab %d eot %d", tok.Name(), tok.VocabSize(), tok.EOT())
	}
	for _, tc := range []struct {
		text string
		ids  []uint32
	}{
		{"Hello world", []uint32{15496, 995}},
		{"hello world", []uint32{31373, 995}},
		{" the", []uint32{262}},
		{"", []uint32{}},
	} {
		got := tok.Encode(tc.text)
		if !reflect.DeepEqual(got, tc.ids) {
			t.Errorf("Encode(%q) = %v, want %v", tc.text, got, tc.ids)
		}
	}
}

func TestGPT2RoundTrip(t *testing.T) {
	tok := mustTokenizer(t, "gpt2")
	for _, s := range []string{
		"Hello world",
		"package main\n\nfunc main() {\n\tfmt.Println(\"héllo, 世界\")\n}\n",
		"  leading and trailing spaces  \n\n",
		"emoji 🙂 and numbers 1234567890",
	} {
		ids := tok.Encode(s)
		for _, id := range ids {
			if id >= uint32(tok.VocabSize()) || id == tok.EOT() {
				t.Fatalf("Encode(%q) produced id %d", s, id)
			}
		}
		if got := tok.Decode(ids); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
	}
}

func TestGPT2SpecialTokens(t *testing.T) {
	tok := mustTokenizer(t, "gpt2")
	// Text that looks like the special token is ordinary text.
	ids := tok.Encode(EOTText)
	for _, id := range ids {
		if id == tok.EOT() {
			t.Fatalf("Encode(%q) produced EOT: %v", EOTText, ids)
		}
	}
	if got := tok.Decode(ids); got != EOTText {
		t.Fatalf("round trip of %q gave %q", EOTText, got)
	}
	// EOT and out-of-vocabulary ids decode without panicking.
	hello := tok.Encode("Hello")
	got := tok.Decode(append(append(append([]uint32{}, hello...), tok.EOT(), 60000), hello...))
	if got != "Hello"+EOTText+"\uFFFDHello" {
		t.Fatalf("Decode with EOT and bad id = %q", got)
	}
}

func TestGPT2Concurrent(t *testing.T) {
	tok := mustTokenizer(t, "gpt2")
	text := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 50)
	want := tok.Encode(text)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if got := tok.Encode(text); !reflect.DeepEqual(got, want) {
					t.Error("concurrent Encode differs")
					return
				}
				tok.Decode(want)
			}
		}()
	}
	wg.Wait()
}

func TestByteTokenizer(t *testing.T) {
	tok := mustTokenizer(t, "byte")
	if tok.VocabSize() != 257 || tok.EOT() != 256 {
		t.Fatalf("vocab %d eot %d", tok.VocabSize(), tok.EOT())
	}
	s := "héllo, 世界 🙂\x00\xff"
	ids := tok.Encode(s)
	if len(ids) != len(s) {
		t.Fatalf("%d ids for %d bytes", len(ids), len(s))
	}
	for i := range ids {
		if ids[i] != uint32(s[i]) {
			t.Fatalf("id %d = %d, want byte %d", i, ids[i], s[i])
		}
	}
	if got := tok.Decode(ids); got != s {
		t.Fatalf("round trip gave %q", got)
	}
	if got := tok.Decode([]uint32{'a', 256, 999, 'b'}); got != "a"+EOTText+"\uFFFDb" {
		t.Fatalf("Decode with EOT and bad id = %q", got)
	}
}

func TestUnknownTokenizer(t *testing.T) {
	_, err := NewTokenizer("sentencepiece")
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"sentencepiece", "gpt2", "byte"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// codecIDs encodes with tiktoken-go's own (regexp-based) r50k_base codec.
func codecIDs(t testing.TB, c tiktoken.Codec, s string) []uint32 {
	ids, _, err := c.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint32, len(ids))
	for i, id := range ids {
		out[i] = uint32(id)
	}
	return out
}

// TestGPT2MatchesTiktokenCodec checks the fast encoder against tiktoken-go's
// codec on Go sources and on random text mixing every character class,
// contractions and long runs (which take the heap merge path).
func TestGPT2MatchesTiktokenCodec(t *testing.T) {
	tok := mustTokenizer(t, "gpt2")
	c, err := tiktoken.Get(tiktoken.R50kBase)
	if err != nil {
		t.Fatal(err)
	}
	check := func(s string) {
		t.Helper()
		if got, want := tok.Encode(s), codecIDs(t, c, s); !reflect.DeepEqual(got, want) {
			t.Fatalf("Encode(%q)\n got %v\nwant %v", s, got, want)
		}
	}
	for _, s := range []string{
		"", " ", "  ", "\n", " \n", "a  b", "a \n\n b  ", "x\u00a0 y\u3000z", "don't we'll I'M 'reve 'x",
		"  'll", "123 4567 ½ ³ ٣", "a...b!!!  ?? ", "tab\tand\r\nCRLF", "ümlaut Straße 世界 🙂🙂 ", EOTText,
		strings.Repeat(" ", 200) + "x", strings.Repeat("=", 150), strings.Repeat("ab", 100),
		strings.Repeat("🙂", 40), strings.Repeat("\n", 70) + "y",
	} {
		check(s)
	}
	if goroot, err := GoRoot(); err == nil {
		files, err := corpusFiles(goroot, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(goroot, f.rel))
			if err != nil {
				t.Fatal(err)
			}
			if s := string(b); utf8.ValidString(s) && !strings.ContainsRune(s, 0x7f) {
				check(s)
			}
		}
	}
	alphabet := []string{"a", "Z", "é", "ж", "世", "7", "٣", "½", " ", "  ", "\n", "\t", "\u00a0", "\u2003", ".", ",", "'", "'s", "'ll", "'re", "-", "😀", "\u0301", "_", "\x00", "{"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		var sb strings.Builder
		for range r.IntN(40) {
			sb.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		check(sb.String())
	}
}

// TestGPT2KeepsEveryByte: DEL and invalid UTF-8, which tiktoken-go's codec
// drops or rewrites, survive a round trip.
func TestGPT2KeepsEveryByte(t *testing.T) {
	tok := mustTokenizer(t, "gpt2")
	for _, s := range []string{"a\x7fb", "a\xffb\xfe", "\xe4\xb8", " \x80x", string([]byte{0, 1, 2, 127, 128, 255})} {
		if got := tok.Decode(tok.Encode(s)); got != s {
			t.Errorf("round trip of %q gave %q", s, got)
		}
	}
}

func BenchmarkGPT2Encode(b *testing.B) {
	docs, n := benchCorpus(b, 4<<20)
	tok := mustTokenizer(b, "gpt2")
	b.SetBytes(n)
	b.ResetTimer()
	for range b.N {
		for _, d := range docs {
			tok.Encode(d)
		}
	}
}

// benchCorpus reads up to budget bytes of the default corpus's Go sources
// for the encoding benchmarks; it skips where there is no GOROOT.
func benchCorpus(b *testing.B, budget int64) (docs []string, n int64) {
	b.Helper()
	goroot, err := GoRoot()
	if err != nil {
		b.Skip(err)
	}
	files, err := corpusFiles(goroot, budget)
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range files {
		data, _ := os.ReadFile(filepath.Join(goroot, f.rel))
		docs = append(docs, string(data))
		n += int64(len(data))
	}
	return docs, n
}

var updateGPT2Vocab = flag.Bool("update-gpt2-vocab", false, "rewrite gpt2_vocab.bin.gz from tiktoken-go's r50k_base")

// TestGPT2VocabFile checks the embedded vocabulary against tiktoken-go's
// r50k_base token by token (and regenerates it with -update-gpt2-vocab).
func TestGPT2VocabFile(t *testing.T) {
	c, err := tiktoken.Get(tiktoken.R50kBase)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]string, gpt2EOT)
	for id := range want {
		s, err := c.Decode([]uint{uint(id)})
		if err != nil || s == "" {
			t.Fatalf("tiktoken-go has no token %d: %v", id, err)
		}
		want[id] = s
	}
	if *updateGPT2Vocab {
		gz, err := encodeGPT2Vocab(want)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("gpt2_vocab.bin.gz", gz, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readGPT2Vocab(gpt2VocabGz)
	if *updateGPT2Vocab {
		raw, _ := os.ReadFile("gpt2_vocab.bin.gz")
		got, err = readGPT2Vocab(raw)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		for id := range want {
			if got[id] != want[id] {
				t.Fatalf("token %d: embedded %q, tiktoken-go %q", id, got[id], want[id])
			}
		}
	}
	// A damaged file is an error, not a short vocabulary.
	if _, err := readGPT2Vocab(gpt2VocabGz[:len(gpt2VocabGz)/2]); err == nil {
		t.Errorf("a truncated vocabulary file was accepted")
	}
}
