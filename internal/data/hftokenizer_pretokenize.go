// This file holds the tokenizer.json pre-tokenizers (ByteLevel, Split on
// a known regex, Metaspace; Split on a String is hftokenizer_split.go) and
// their parsing, GPT-2's byte-level alphabet and the
// hand-written scanner for the LLaMA-3 / Qwen2 split pattern.

package data

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

type hfPreTokenizer interface {
	// apply splits p and passes each piece to t.preTokenize(next, ...).
	apply(t *HFTokenizer, next int, p hfPiece, out []uint32) []uint32
}

// hfByteLevel is the ByteLevel pre-tokenizer: split (GPT-2's regex when
// use_regex is set; nil: no split) and map bytes to GPT-2's alphabet. A Split
// with a known regex followed by ByteLevel without prefix space or regex (the
// LLaMA-3 layout) is run as one hfByteLevel with the Split's regex, which cuts
// the same pieces.
type hfByteLevel struct {
	addPrefixSpace bool
	split          func(s string, i int) int
}

func (b hfByteLevel) apply(t *HFTokenizer, next int, p hfPiece, out []uint32) []uint32 {
	s := p.s
	if b.addPrefixSpace && !strings.HasPrefix(s, " ") {
		s = " " + s
	}
	mapped := byteLevelString(s)
	if b.split == nil {
		return t.preTokenize(next, hfPiece{mapped, p.first}, out)
	}
	// Split s and cut mapped at the same places (each byte maps to a
	// character of one or two bytes).
	first := p.first
	for i, mi := 0, 0; i < len(s); {
		e := b.split(s, i)
		me := mi
		for k := i; k < e; k++ {
			me += len(byteLevelChars[s[k]])
		}
		out = t.preTokenize(next, hfPiece{mapped[mi:me], first}, out)
		first = false
		i, mi = e, me
	}
	return out
}

// hfRegexSplit is a Split pre-tokenizer (behavior Isolated) with one of the
// known patterns, each of which matches every character, so the pieces are
// the successive matches.
type hfRegexSplit struct{ next func(s string, i int) int }

func (r hfRegexSplit) apply(t *HFTokenizer, next int, p hfPiece, out []uint32) []uint32 {
	first := p.first
	for i := 0; i < len(p.s); {
		e := r.next(p.s, i)
		out = t.preTokenize(next, hfPiece{p.s[i:e], first}, out)
		first = false
		i = e
	}
	return out
}

const (
	hfPrependAlways = iota
	hfPrependFirst
	hfPrependNever
)

type hfMetaspace struct {
	repl    string
	scheme  int
	doSplit bool
}

func (m hfMetaspace) apply(t *HFTokenizer, next int, p hfPiece, out []uint32) []uint32 {
	s := strings.ReplaceAll(p.s, " ", m.repl)
	if !strings.HasPrefix(s, m.repl) && (m.scheme == hfPrependAlways || m.scheme == hfPrependFirst && p.first) {
		s = m.repl + s
	}
	if !m.doSplit {
		return t.preTokenize(next, hfPiece{s, p.first}, out)
	}
	for _, q := range splitMergedWithNext(s, m.repl, p.first, nil) {
		out = t.preTokenize(next, q, out)
	}
	return out
}

// splitMergedWithNext splits s at each occurrence of delim, attaching each
// delimiter to the text after it (SplitDelimiterBehavior::MergedWithNext: a
// delimiter followed by another delimiter stays alone).
func splitMergedWithNext(s, delim string, first bool, out []hfPiece) []hfPiece {
	return splitPieces(s, splitParts(literalParts(s, delim, false), hfMergedWithNext), first, out)
}

// ---- byte-level alphabet ----

// byteLevelChars[b] is the character GPT-2's bytes_to_unicode maps byte b to,
// as UTF-8; byteLevelBytes inverts it (-1: not a byte-level character).
var byteLevelChars, byteLevelBytes = func() (chars [256]string, inv [324]int16) {
	for i := range inv {
		inv[i] = -1
	}
	n := 0
	for b := range 256 {
		r := rune(b)
		if !(b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF) {
			r = rune(256 + n)
			n++
		}
		chars[b] = string(r)
		inv[r] = int16(b)
	}
	return chars, inv
}()

func byteLevelString(s string) string {
	var sb strings.Builder
	sb.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		sb.WriteString(byteLevelChars[s[i]])
	}
	return sb.String()
}

// ---- the LLaMA-3 / Qwen2 split pattern ----

// Split patterns known to the Split pre-tokenizer.
const (
	hfGPT2Pattern   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	hfLlama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	hfQwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// llama3Splitter returns the scanner for the LLaMA-3 pattern, whose numbers
// are runs of at most maxDigits (3; Qwen2: 1).
func llama3Splitter(maxDigits int) func(s string, i int) int {
	return func(s string, i int) int { return nextPieceLlama3(s, i, maxDigits) }
}

// contractionLen returns the length of a case-insensitive 's 't 're 've 'm
// 'll 'd at s (s[0] is the apostrophe), or 0. Case folding makes ſ (U+017F)
// match s.
func contractionLen(s string) int {
	if len(s) < 2 {
		return 0
	}
	if !isASCIILetter(s[1]) {
		if strings.HasPrefix(s[1:], "ſ") {
			return 1 + len("ſ")
		}
		return 0
	}
	switch s[1] | 0x20 {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if len(s) > 2 && isASCIILetter(s[2]) && s[2]|0x20 == 'e' {
			return 3
		}
	case 'l':
		if len(s) > 2 && isASCIILetter(s[2]) && s[2]|0x20 == 'l' {
			return 3
		}
	}
	return 0
}

func isASCIILetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

// nextPieceLlama3 returns the end of the match of
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// starting at s[i], i < len(s).
func nextPieceLlama3(s string, i, maxDigits int) int {
	c := s[i]
	if c == '\'' {
		if n := contractionLen(s[i:]); n > 0 {
			return i + n
		}
	}
	cls, n := runeAt(s, i)
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if cls == clsLetter {
		return scanClass(s, i, clsLetter)
	}
	if c != '\r' && c != '\n' && cls != clsNumber && i+n < len(s) {
		if c2, _ := runeAt(s, i+n); c2 == clsLetter {
			return scanClass(s, i+n, clsLetter)
		}
	}
	// \p{N}{1,maxDigits}
	if cls == clsNumber {
		j := i + n
		for k := 1; k < maxDigits && j < len(s); k++ {
			c2, n2 := runeAt(s, j)
			if c2 != clsNumber {
				break
			}
			j += n2
		}
		return j
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	j := i
	if c == ' ' {
		j++
	}
	if j < len(s) {
		if c2, _ := runeAt(s, j); c2 == clsOther {
			e := scanClass(s, j, clsOther)
			for e < len(s) && (s[e] == '\r' || s[e] == '\n') {
				e++
			}
			return e
		}
	}
	// Here s[i] is whitespace. \s*[\r\n]+: up to the last newline of the run.
	end := scanClass(s, i, clsSpace)
	if k := strings.LastIndexAny(s[i:end], "\r\n"); k >= 0 {
		return i + k + 1
	}
	return spaceRunEnd(s, i, end)
}

// parseMetaspace reads a Metaspace pre-tokenizer or decoder, current
// (prepend_scheme, split) or older (add_prefix_space) format.
func parseMetaspace(raw json.RawMessage) (repl string, scheme int, split bool, err error) {
	var m struct {
		Replacement    string  `json:"replacement"`
		PrependScheme  *string `json:"prepend_scheme"`
		AddPrefixSpace *bool   `json:"add_prefix_space"`
		Split          *bool   `json:"split"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", 0, false, err
	}
	if utf8.RuneCountInString(m.Replacement) != 1 {
		return "", 0, false, fmt.Errorf("pre-tokenizer Metaspace replacement %q is not one character", m.Replacement)
	}
	scheme = hfPrependAlways
	if m.PrependScheme != nil {
		switch *m.PrependScheme {
		case "always":
		case "first":
			scheme = hfPrependFirst
		case "never":
			scheme = hfPrependNever
		default:
			return "", 0, false, fmt.Errorf("pre-tokenizer Metaspace prepend_scheme %q is not supported", *m.PrependScheme)
		}
	}
	if m.AddPrefixSpace != nil && !*m.AddPrefixSpace {
		scheme = hfPrependNever
	}
	return m.Replacement, scheme, m.Split == nil || *m.Split, nil
}

// parseHFPreTokenizer reads a tokenizer.json "pre_tokenizer". A Split with
// a known regex followed by a ByteLevel that neither adds a prefix space nor
// splits becomes one hfByteLevel splitting with that regex.
func parseHFPreTokenizer(raw json.RawMessage) ([]hfPreTokenizer, error) {
	all, err := parseHFComponent(raw, "pretokenizers", hfPreTokenizerOf)
	if err != nil {
		return nil, err
	}
	var out []hfPreTokenizer
	for _, q := range all {
		if bl, ok := q.(hfByteLevel); ok && !bl.addPrefixSpace && bl.split == nil && len(out) > 0 {
			if rs, ok := out[len(out)-1].(hfRegexSplit); ok {
				out[len(out)-1] = hfByteLevel{split: rs.next}
				continue
			}
		}
		out = append(out, q)
	}
	return out, nil
}

// hfPreTokenizerOf reads a pre-tokenizer of type typ other than Sequence.
func hfPreTokenizerOf(typ string, raw json.RawMessage) ([]hfPreTokenizer, error) {
	switch typ {
	case "ByteLevel":
		var b struct {
			AddPrefixSpace *bool `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, err
		}
		bl := hfByteLevel{addPrefixSpace: b.AddPrefixSpace == nil || *b.AddPrefixSpace}
		if b.UseRegex == nil || *b.UseRegex {
			bl.split = nextPiece
		}
		return []hfPreTokenizer{bl}, nil
	case "Split":
		var s struct {
			Pattern  json.RawMessage `json:"pattern"`
			Behavior string          `json:"behavior"`
			Invert   bool            `json:"invert"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		lit, re, isRe, err := hfPattern(s.Pattern)
		if err != nil {
			return nil, err
		}
		if !isRe {
			b, err := parseSplitBehavior(s.Behavior)
			if err != nil {
				return nil, err
			}
			return []hfPreTokenizer{hfStringSplit{lit, b, s.Invert}}, nil
		}
		if s.Behavior != "Isolated" || s.Invert {
			return nil, fmt.Errorf("pre-tokenizer Split with behavior %q invert %v is not supported (only Isolated)", s.Behavior, s.Invert)
		}
		switch re {
		case hfGPT2Pattern:
			return []hfPreTokenizer{hfRegexSplit{nextPiece}}, nil
		case hfLlama3Pattern:
			return []hfPreTokenizer{hfRegexSplit{llama3Splitter(3)}}, nil
		case hfQwen2Pattern:
			return []hfPreTokenizer{hfRegexSplit{llama3Splitter(1)}}, nil
		}
		return nil, fmt.Errorf("pre-tokenizer Split regex %q is not supported (known: the GPT-2, LLaMA-3 and Qwen2 patterns)", re)
	case "Metaspace":
		repl, scheme, split, err := parseMetaspace(raw)
		if err != nil {
			return nil, err
		}
		return []hfPreTokenizer{hfMetaspace{repl, scheme, split}}, nil
	}
	return nil, fmt.Errorf("pre-tokenizer %q is not supported", typ)
}
