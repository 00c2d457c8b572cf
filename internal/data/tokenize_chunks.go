// This file cuts one large text document (nanoGPT's one input.txt) into
// pieces that tokenize separately to the same ids as the whole, so that all
// cores work on it. A safe cut depends on the tokenizer's pre-tokenizer:
// with GPT-2's regex, a run of whitespace before a non-space character is
// one pre-token of all but its last character, then the last character
// (alone, or as the " " of the next word); cutting before that last
// character changes neither. The cut is made only between two newlines
// followed by a printable ASCII character (a paragraph break), where every
// regex flavour agrees on what is whitespace. The byte tokenizer can be cut
// anywhere; tokenizer.json files are not cut (normalizers and
// pre-tokenizers such as Metaspace treat the start of a text specially).

package data

import "strings"

// chunkBytes is the size text documents are cut to (a variable for tests).
var chunkBytes = 1 << 20

// textChunker returns the cutter of tok's documents, or nil when they
// must be tokenized whole.
func textChunker(tok Tokenizer) func(string) []string {
	if m, ok := tok.(mappingTokenizer); ok {
		if _, ok := m.enc.(eotEncoder); !ok {
			return nil
		}
		tok = m.Tokenizer // EOTText is never cut: a cut's newlines are outside it
	}
	switch tok.(type) {
	case *gpt2Tokenizer, byteTokenizer:
		return cutParagraphs
	}
	return nil
}

// cutParagraphs cuts s into pieces of about chunkBytes, each (but the
// last) ending at the first newline of a paragraph break "\n\nX", X
// printable ASCII other than space.
func cutParagraphs(s string) []string {
	var out []string
	for len(s) > 2*chunkBytes {
		i := chunkBytes
		cut := -1
		for cut < 0 {
			j := strings.Index(s[i:], "\n\n")
			if j < 0 {
				return append(out, s)
			}
			k := i + j + 1 // between the two newlines
			if k+1 < len(s) && s[k+1] > ' ' && s[k+1] < 0x7f {
				cut = k
			}
			i = k
		}
		out = append(out, s[:cut])
		s = s[cut:]
	}
	return append(out, s)
}
