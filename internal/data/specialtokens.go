// This file makes special-token handling a choice. Tokenizer.Encode reads
// special-token text such as "<|end_of_text|>" or "<start_of_turn>" as
// ordinary text (the safe reading of web text); HuggingFace's encode maps
// it to the special ids, which chat templates rely on. WithSpecialTokens
// gives a tokenizer whose Encode does either.

package data

import (
	"fmt"
	"slices"
	"strings"
)

// Special-token modes (data.special_tokens, tokenize --special-tokens).
const (
	SpecialText = "text" // special-token text is encoded as text
	SpecialMap  = "map"  // special-token text becomes the special id, as HF's encode does
)

// SpecialTokenModes lists the modes.
var SpecialTokenModes = []string{SpecialMap, SpecialText}

// specialEncoder is a tokenizer that can map special-token text to ids.
type specialEncoder interface {
	EncodeSpecial(text string) []uint32
}

// mappingTokenizer is a Tokenizer whose Encode maps special-token text.
type mappingTokenizer struct {
	Tokenizer
	enc specialEncoder
}

func (m mappingTokenizer) Encode(text string) []uint32 { return m.enc.EncodeSpecial(text) }

// WithSpecialTokens returns tok encoding special-token text per mode. Its
// Name is tok's: shards and checkpoints record the vocabulary, which is the
// same either way.
func WithSpecialTokens(tok Tokenizer, mode string) (Tokenizer, error) {
	if !slices.Contains(SpecialTokenModes, mode) {
		return nil, fmt.Errorf("special tokens %q: want one of %s", mode, strings.Join(SpecialTokenModes, ", "))
	}
	if mode == SpecialText {
		if m, ok := tok.(mappingTokenizer); ok {
			return m.Tokenizer, nil
		}
		return tok, nil
	}
	if enc, ok := tok.(specialEncoder); ok {
		return mappingTokenizer{tok, enc}, nil
	}
	return mappingTokenizer{tok, eotEncoder{tok}}, nil
}

// eotEncoder maps EOTText, the one special token of the GPT-2 and byte
// tokenizers, to EOT.
type eotEncoder struct{ tok Tokenizer }

func (e eotEncoder) EncodeSpecial(text string) []uint32 {
	var out []uint32
	for {
		i := strings.Index(text, EOTText)
		if i < 0 {
			return append(out, e.tok.Encode(text)...)
		}
		out = append(append(out, e.tok.Encode(text[:i])...), e.tok.EOT())
		text = text[i+len(EOTText):]
	}
}
