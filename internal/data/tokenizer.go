// This file holds the tokenizers: the Tokenizer interface, GPT-2 BPE
// (r50k_base; vocabulary from github.com/tiktoken-go/tokenizer, embedded in
// the binary by gpt2vocab.go; encoder in bpe.go) and a byte-level tokenizer. HuggingFace
// tokenizer.json files are in hftokenizer.go.

package data

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// Tokenizer turns text into token ids and back. Implementations are safe for
// concurrent use by multiple goroutines.
type Tokenizer interface {
	// Name is the name NewTokenizer knows the tokenizer by; it is part of
	// cache keys, so it must identify the vocabulary.
	Name() string
	// Encode tokenizes text as ordinary text: special-token strings such as
	// "<|endoftext|>" inside text are encoded as text, never as EOT.
	Encode(text string) []uint32
	// Decode turns ids back into text. The EOT id decodes to EOTText (for a
	// HuggingFace tokenizer: to its own text, such as "</s>"); ids outside the
	// vocabulary decode to U+FFFD.
	Decode(ids []uint32) string
	// VocabSize is the number of ids the tokenizer can produce (max id + 1),
	// EOT included. Models may pad their embedding beyond it (e.g. 50304).
	VocabSize() int
	// EOT is the end-of-text id that separates documents.
	EOT() uint32
}

// EOTText is how Decode renders the end-of-text token.
const EOTText = "<|endoftext|>"

// Tokenizer names accepted by NewTokenizer.
const (
	TokenizerGPT2 = "gpt2"
	TokenizerByte = "byte"
)

// TokenizerNames lists the names NewTokenizer accepts.
var TokenizerNames = []string{TokenizerByte, TokenizerGPT2}

// NewTokenizer returns the tokenizer called name: "gpt2" (GPT-2 BPE,
// vocabulary 50257, EOT 50256), "byte" (bytes 0..255, EOT 256), or a
// HuggingFace tokenizer.json: a path ending in .json (normally
// tokenizer.json), or a directory holding a tokenizer.json (see
// LoadHFTokenizer).
func NewTokenizer(name string) (Tokenizer, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case TokenizerGPT2, "r50k_base":
		return newGPT2()
	case TokenizerByte:
		return byteTokenizer{}, nil
	}
	path, ok, err := hfTokenizerPath(strings.TrimSpace(name))
	if err != nil {
		return nil, err
	}
	if ok {
		return LoadHFTokenizer(path)
	}
	return nil, fmt.Errorf("unknown tokenizer %q (valid: %s, or the path of a HuggingFace %s or of a directory holding one)",
		name, strings.Join(TokenizerNames, ", "), HFTokenizerFile)
}

// gpt2Tokenizer is GPT-2's BPE (tiktoken's r50k_base). The vocabulary comes
// from github.com/tiktoken-go/tokenizer, compiled into the binary; encoding
// runs through bpeCodec (bpe.go), which gives the same ids as tiktoken-go's
// codec on valid text without DEL characters, only faster.
type gpt2Tokenizer struct {
	bpe bpeCodec
	dec []string // id -> bytes
}

const (
	gpt2EOT   = 50256
	gpt2Vocab = 50257
)

var (
	gpt2Once sync.Once
	gpt2Tok  *gpt2Tokenizer
	gpt2Err  error
)

// newGPT2 builds the shared GPT-2 tokenizer once per process.
func newGPT2() (*gpt2Tokenizer, error) {
	gpt2Once.Do(func() {
		vocab, err := readGPT2Vocab(gpt2VocabGz)
		if err != nil {
			gpt2Err = fmt.Errorf("tokenizer gpt2: %w", err)
			return
		}
		g := &gpt2Tokenizer{bpe: bpeCodec{ranks: make(map[string]uint32, gpt2EOT)}, dec: vocab}
		for id, s := range vocab {
			if s == "" {
				gpt2Err = fmt.Errorf("tokenizer gpt2: vocabulary has no token %d", id)
				return
			}
			g.bpe.ranks[s] = uint32(id)
		}
		if len(g.bpe.ranks) != gpt2EOT {
			gpt2Err = fmt.Errorf("tokenizer gpt2: vocabulary holds %d distinct tokens, want %d", len(g.bpe.ranks), gpt2EOT)
			return
		}
		for b := range g.bpe.byteIDs {
			id, ok := g.bpe.ranks[string([]byte{byte(b)})]
			if !ok {
				gpt2Err = fmt.Errorf("tokenizer gpt2: vocabulary has no token for byte %#02x", b)
				return
			}
			g.bpe.byteIDs[b] = id
		}
		gpt2Tok = g
	})
	return gpt2Tok, gpt2Err
}

func (g *gpt2Tokenizer) Name() string   { return TokenizerGPT2 }
func (g *gpt2Tokenizer) VocabSize() int { return gpt2Vocab }
func (g *gpt2Tokenizer) EOT() uint32    { return gpt2EOT }

func (g *gpt2Tokenizer) Encode(text string) []uint32 {
	return g.bpe.encode(text, make([]uint32, 0, len(text)/3+1))
}

func (g *gpt2Tokenizer) Decode(ids []uint32) string {
	var sb strings.Builder
	for _, id := range ids {
		switch {
		case id < gpt2EOT:
			sb.WriteString(g.dec[id])
		case id == gpt2EOT:
			sb.WriteString(EOTText)
		default:
			sb.WriteRune(utf8.RuneError)
		}
	}
	return sb.String()
}

// byteTokenizer maps each byte to its value and uses 256 as EOT.
type byteTokenizer struct{}

func (byteTokenizer) Name() string   { return TokenizerByte }
func (byteTokenizer) VocabSize() int { return 257 }
func (byteTokenizer) EOT() uint32    { return 256 }

func (byteTokenizer) Encode(text string) []uint32 {
	out := make([]uint32, len(text))
	for i := 0; i < len(text); i++ {
		out[i] = uint32(text[i])
	}
	return out
}

func (byteTokenizer) Decode(ids []uint32) string {
	var sb strings.Builder
	sb.Grow(len(ids))
	for _, id := range ids {
		switch {
		case id < 256:
			sb.WriteByte(byte(id))
		case id == 256:
			sb.WriteString(EOTText)
		default:
			sb.WriteRune(utf8.RuneError)
		}
	}
	return sb.String()
}
