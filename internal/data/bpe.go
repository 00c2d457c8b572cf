// This file holds a fast byte-level BPE encoder for GPT-2: a hand-written
// pre-tokenizer equivalent to GPT-2's split pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// and the tiktoken merge loop over a rank table (rank = token id). It is
// about ten times faster than running the pattern through a backtracking
// regexp, and unlike tiktoken-go's codec it keeps every input byte (the codec
// drops DEL and rewrites invalid UTF-8 as U+FFFD).

package data

import (
	"unicode"
	"unicode/utf8"
)

// Character classes of the split pattern.
const (
	clsOther  = iota // [^\s\p{L}\p{N}], invalid UTF-8 bytes included
	clsLetter        // \p{L}
	clsNumber        // \p{N}
	clsSpace         // \s (unicode.IsSpace, as regexp2 and Go define it)
)

var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for c := range utf8.RuneSelf {
		t[c] = classOf(rune(c))
	}
	return t
}()

func classOf(r rune) uint8 {
	switch {
	case unicode.IsSpace(r):
		return clsSpace
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	}
	return clsOther
}

// runeAt returns the class and byte length of the character at s[i]; an
// invalid UTF-8 byte is one character of class other.
func runeAt(s string, i int) (cls uint8, size int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && n <= 1 {
		return clsOther, 1
	}
	return classOf(r), n
}

// scanClass returns the end of the run of class cls starting at i.
func scanClass(s string, i int, cls uint8) int {
	for i < len(s) {
		c, n := runeAt(s, i)
		if c != cls {
			break
		}
		i += n
	}
	return i
}

// nextPiece returns the end of the pre-token that starts at s[i], i < len(s).
func nextPiece(s string, i int) int {
	// 's|'t|'re|'ve|'m|'ll|'d
	if s[i] == '\'' && i+1 < len(s) {
		switch s[i+1] {
		case 's', 't', 'm', 'd':
			return i + 2
		case 'r', 'v':
			if i+2 < len(s) && s[i+2] == 'e' {
				return i + 3
			}
		case 'l':
			if i+2 < len(s) && s[i+2] == 'l' {
				return i + 3
			}
		}
	}
	// ' ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+': an optional ASCII space, then a
	// run of one class.
	j := i
	if s[j] == ' ' {
		j++
	}
	if j < len(s) {
		if cls, _ := runeAt(s, j); cls != clsSpace {
			return scanClass(s, j, cls)
		}
	}
	return spaceRunEnd(s, i, scanClass(s, i, clsSpace))
}

// spaceRunEnd is where \s+(?!\S)|\s+ ends the piece for the whitespace run
// s[i:end]: the run less its last character when a non-space follows and the
// run is longer than one character (so the next piece takes one space).
func spaceRunEnd(s string, i, end int) int {
	if end == len(s) {
		return end
	}
	_, last := utf8.DecodeLastRuneInString(s[i:end])
	if end-last > i {
		return end - last
	}
	return end
}

// bpeCodec encodes with byte-level BPE given the rank (= id) of every token.
type bpeCodec struct {
	ranks   map[string]uint32
	byteIDs [256]uint32 // ranks of the single bytes, the parts merging starts from
}

// encode appends the ids of text to out.
func (c *bpeCodec) encode(text string, out []uint32) []uint32 {
	for i := 0; i < len(text); {
		end := nextPiece(text, i)
		piece := text[i:end]
		if id, ok := c.ranks[piece]; ok {
			out = append(out, id)
		} else {
			out = c.merge(piece, out)
		}
		i = end
	}
	return out
}

// merge appends the BPE tokens of piece (see bpeMerge): the parts start as
// single bytes and a pair's rule is the rank of the merged string, which is
// also its id. Pieces up to 64 bytes merge in stack buffers.
func (c *bpeCodec) merge(piece string, out []uint32) []uint32 {
	if len(piece) == 1 {
		return append(out, c.byteIDs[piece[0]])
	}
	var partBuf [64]bpePart
	var heapBuf [64]mergeCand
	parts := partBuf[:0]
	if len(piece) > len(partBuf) {
		parts = make([]bpePart, 0, len(piece))
	}
	for i := range len(piece) {
		parts = append(parts, bpePart{id: c.byteIDs[piece[i]], start: int32(i)})
	}
	linkParts(parts)
	rule := func(_, _ uint32, start, end int32) (bpeRule, bool) {
		rk, ok := c.ranks[piece[start:end]]
		return bpeRule{rk, rk}, ok
	}
	return bpeMerge(int32(len(piece)), parts, rule, heapBuf[:0], out)
}
