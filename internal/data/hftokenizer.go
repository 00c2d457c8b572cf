// This file holds HFTokenizer: a HuggingFace tokenizer.json with a BPE model,
// encoded and decoded token for token as the `tokenizers` library (0.19 and
// later) does. Two families are covered:
//
//   - byte-level BPE (GPT-2, LLaMA-3, Qwen2): a ByteLevel pre-tokenizer, either
//     with GPT-2's split regex or after a Split pre-tokenizer holding the
//     LLaMA-3 or Qwen2 regex, and the ByteLevel decoder;
//   - SentencePiece-style BPE with byte fallback (LLaMA-2, Mistral): the
//     normalizer Sequence[Prepend("▁"), Replace(" ", "▁")] or a Metaspace
//     pre-tokenizer, <0xXX> byte tokens for characters outside the vocabulary,
//     and the decoder Sequence[Replace("▁", " "), ByteFallback, Fuse,
//     Strip(" ", 1, 0)] or Metaspace.
//
// The pipeline is the library's: added tokens are split out of the raw text
// (Aho-Corasick leftmost-longest, with lstrip, rstrip and single_word), each
// remaining piece is normalized and split again on the added tokens that match
// normalized text, pre-tokenized, and each pre-token is merged by BPE (merge
// rank order, leftmost first, ignore_merges, byte_fallback, unk fusing).
// Decoding runs every token, added ones included, through the decoder chain.
//
// What is not reproduced: the post-processor is never applied (Encode adds no
// BOS; BOS reports the id it would add), nor truncation, padding or BPE dropout.
// The regexes are hand-written scanners for the patterns above only; a file
// with another pre-tokenizer, normalizer, decoder or model is refused with an
// error naming it.

package data

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// HFTokenizerFile is the file name LoadHFTokenizer expects in a directory.
const HFTokenizerFile = "tokenizer.json"

// hfEOTNames are the added tokens tried, in order, for EOT: the end-of-sequence
// token of LLaMA-2/Mistral, of LLaMA-3 base models, of GPT-2/Qwen, then of
// LLaMA-3 chat (end of turn), then two other common spellings.
var hfEOTNames = []string{"</s>", "<|end_of_text|>", "<|endoftext|>", "<|eot_id|>", "<eos>", "<|im_end|>"}

// hfBOSNames are the special tokens taken as BOS when the post-processor names
// none.
var hfBOSNames = []string{"<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>"}

// HFTokenizer is a tokenizer loaded from a HuggingFace tokenizer.json (see
// LoadHFTokenizer). It is safe for concurrent use.
type HFTokenizer struct {
	name      string
	path      string
	vocabSize int
	eot       uint32
	bos       uint32
	hasBOS    bool

	idToTok []string // id -> token text (added tokens override the model's)
	hasTok  []bool

	added      []hfAdded
	rawMatch   *hfMatcher // added tokens matched in the raw text
	normMatch  *hfMatcher // added tokens matched in normalized text
	normalizer []hfNormalizer
	preTok     []hfPreTokenizer
	decoder    []hfDecoder // nil: tokens joined with spaces
	hasDecoder bool

	// BPE model
	vocab        map[string]uint32
	merges       map[uint64]bpeRule
	byteFallback bool
	byteIDs      [256]int64 // id of <0xXX>, -1 if absent
	hasUnk       bool
	unkID        uint32
	fuseUnk      bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix
	ignoreMerges bool

	cache  [hfCacheShards]hfCacheShard // pre-token -> ids
	cacheN atomic.Int64
}

const (
	hfCacheMax     = 1 << 17 // pre-tokens whose BPE result is cached, at most
	hfCacheShards  = 64
	hfCacheWordMax = 256     // longer pre-tokens (LLaMA-2 has no pre-tokenizer: whole texts) are not cached
	hfMaxID        = 1 << 24 // token ids must be below (real vocabularies: < 300k)
)

type hfCacheShard struct {
	sync.RWMutex
	m map[string][]uint32
}

var hfCacheSeed = maphash.MakeSeed()

type hfAdded struct {
	id                                             uint32
	content                                        string
	special, lstrip, rstrip, singleWord, normalize bool
}

// LoadHFTokenizer reads a HuggingFace tokenizer.json holding a BPE model. Its
// Encode follows the Tokenizer contract: special tokens written in the text
// are encoded as text (the library's encode_special_tokens=True); added tokens
// that are not special are still matched. EncodeSpecial matches special tokens
// too, as the library does by default. Neither adds BOS (the file's
// post-processor is not applied); BOS returns the id to prepend. EOT is the
// first of </s>, <|end_of_text|>, <|endoftext|>, <|eot_id|> (then <eos>,
// <|im_end|>) that the file defines; Decode renders it as its own text, not
// EOTText. Name is "hf-" and 16 hex digits of the file's SHA-256 (it names
// cache directories, so it holds no colon).
//
// The concrete type is *HFTokenizer.
func LoadHFTokenizer(path string) (tok Tokenizer, err error) {
	defer func() {
		if r := recover(); r != nil {
			tok, err = nil, fmt.Errorf("tokenizer %s: %v", path, r)
		}
	}()
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := parseHFTokenizer(raw)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	sum := sha256.Sum256(raw)
	t.name = "hf-" + hex.EncodeToString(sum[:8])
	t.path = path
	return t, nil
}

// hfTokenizerPath reports whether name designates a tokenizer.json: a path
// ending in .json (tokenizer.json, or any other name, as the training config
// accepts), or a directory (which must then hold a tokenizer.json).
func hfTokenizerPath(name string) (path string, ok bool, err error) {
	if strings.HasSuffix(strings.ToLower(name), ".json") {
		return name, true, nil
	}
	fi, statErr := os.Stat(name)
	if statErr != nil || !fi.IsDir() {
		return "", false, nil
	}
	p := filepath.Join(name, HFTokenizerFile)
	if _, err := os.Stat(p); err != nil {
		return "", true, fmt.Errorf("tokenizer: directory %s has no %s", name, HFTokenizerFile)
	}
	return p, true, nil
}

func (t *HFTokenizer) Name() string   { return t.name }
func (t *HFTokenizer) VocabSize() int { return t.vocabSize }
func (t *HFTokenizer) EOT() uint32    { return t.eot }

// Path is the file the tokenizer was loaded from.
func (t *HFTokenizer) Path() string { return t.path }

// BOS returns the beginning-of-sequence id the file's post-processor would
// prepend (TemplateProcessing, RobertaProcessing or BertProcessing), or, when
// it names none, the special token <|begin_of_text|>, <s>, <bos> or
// <|startoftext|>; ok is false when there is none (GPT-2). Encode never adds it.
func (t *HFTokenizer) BOS() (id uint32, ok bool) { return t.bos, t.hasBOS }

// TokenID returns the id of a token given by its text (an added token or a
// vocabulary entry, as in the file).
func (t *HFTokenizer) TokenID(token string) (uint32, bool) {
	for i := range t.added {
		if t.added[i].content == token {
			return t.added[i].id, true
		}
	}
	id, ok := t.vocab[token]
	return id, ok
}

// Encode tokenizes text with special tokens encoded as ordinary text (the
// library's encode_special_tokens=True, add_special_tokens=False).
func (t *HFTokenizer) Encode(text string) []uint32 {
	return t.encode(text, false, make([]uint32, 0, len(text)/3+1))
}

// EncodeSpecial tokenizes text as the library's encode(text,
// add_special_tokens=False) does: special tokens written in the text become
// their ids.
func (t *HFTokenizer) EncodeSpecial(text string) []uint32 {
	return t.encode(text, true, make([]uint32, 0, len(text)/3+1))
}

// Decode is the library's decode(ids, skip_special_tokens=False): invalid
// UTF-8 that byte tokens leave becomes U+FFFD as the library makes it. Ids
// outside the vocabulary decode to U+FFFD (the library drops them).
func (t *HFTokenizer) Decode(ids []uint32) string {
	toks := make([]string, len(ids))
	for i, id := range ids {
		if int(id) < len(t.idToTok) && t.hasTok[id] {
			toks[i] = t.idToTok[id]
		} else {
			toks[i] = "\uFFFD"
		}
	}
	if !t.hasDecoder {
		return strings.Join(toks, " ")
	}
	for _, d := range t.decoder {
		toks = d.decode(toks)
	}
	return strings.Join(toks, "")
}

// ---- encoding ----

// hfPiece is a piece of text between pre-tokenization steps; first is set on
// the piece that starts at offset 0 of the original text (Metaspace's
// prepend_scheme "first").
type hfPiece struct {
	s     string
	first bool
}

type hfSplit struct {
	start, end int
	tok        int // index into added, -1 for text
}

func (t *HFTokenizer) encode(text string, matchSpecial bool, out []uint32) []uint32 {
	var segs, sub []hfSplit
	segs = t.findAdded(text, t.rawMatch, matchSpecial, segs)
	for _, sg := range segs {
		if sg.tok >= 0 {
			out = append(out, t.added[sg.tok].id)
			continue
		}
		s := text[sg.start:sg.end]
		for _, n := range t.normalizer {
			s = n.normalize(s)
		}
		if s == "" {
			continue
		}
		sub = t.findAdded(s, t.normMatch, matchSpecial, sub[:0])
		for _, ss := range sub {
			if ss.tok >= 0 {
				out = append(out, t.added[ss.tok].id)
				continue
			}
			out = t.preTokenize(0, hfPiece{s[ss.start:ss.end], sg.start == 0 && ss.start == 0}, out)
		}
	}
	return out
}

// preTokenize runs pre-tokenizer step k and the later ones on p, then BPE on
// each resulting pre-token.
func (t *HFTokenizer) preTokenize(k int, p hfPiece, out []uint32) []uint32 {
	if k == len(t.preTok) {
		return t.bpe(p.s, out)
	}
	return t.preTok[k].apply(t, k+1, p, out)
}

// findAdded splits s into text and added tokens as the library's
// AddedVocabulary.find_matches does. Empty text pieces are left out.
func (t *HFTokenizer) findAdded(s string, m *hfMatcher, matchSpecial bool, out []hfSplit) []hfSplit {
	if m == nil || len(m.nodes) <= 1 {
		if s != "" {
			out = append(out, hfSplit{0, len(s), -1})
		}
		return out
	}
	startOff := 0
	for i := 0; i < len(s); {
		if !m.first[s[i]] {
			i++
			continue
		}
		k, end := m.longestAt(s, i)
		if k < 0 {
			i++
			continue
		}
		start, stop := i, end
		i = end
		a := &t.added[k]
		if a.special && !matchSpecial {
			continue
		}
		if a.singleWord {
			startSpace := start == 0 || !endsWithWordChar(s[:start])
			stopSpace := stop == len(s) || !startsWithWordChar(s[stop:])
			if !startSpace || !stopSpace {
				continue
			}
		}
		if a.lstrip {
			ns := len(strings.TrimRightFunc(s[:start], unicode.IsSpace))
			start = max(ns, startOff)
		}
		if a.rstrip {
			stop = len(s) - len(strings.TrimLeftFunc(s[stop:], unicode.IsSpace))
		}
		if startOff < start {
			out = append(out, hfSplit{startOff, start, -1})
		}
		out = append(out, hfSplit{start, stop, k})
		startOff = stop
	}
	if startOff < len(s) {
		out = append(out, hfSplit{startOff, len(s), -1})
	}
	return out
}

// isWordChar is \w of Rust's regex crate: alphabetic, marks, decimal digits,
// connector punctuation and joiners.
func isWordChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) || unicode.Is(unicode.Nl, r) ||
		unicode.Is(unicode.Pc, r) || unicode.Is(unicode.Other_Alphabetic, r) || r == 0x200C || r == 0x200D
}

func endsWithWordChar(s string) bool {
	r, n := utf8.DecodeLastRuneInString(s)
	return n > 0 && isWordChar(r)
}

func startsWithWordChar(s string) bool {
	r, n := utf8.DecodeRuneInString(s)
	return n > 0 && isWordChar(r)
}

// hfMatcher finds the longest added token starting at a position (a byte trie).
type hfMatcher struct {
	nodes []hfTrieNode
	first [256]bool
}

type hfTrieNode struct {
	next map[byte]int32
	tok  int // index into added, -1 if no token ends here
}

func newHFMatcher() *hfMatcher {
	return &hfMatcher{nodes: []hfTrieNode{{tok: -1}}}
}

func (m *hfMatcher) add(pattern string, tok int) {
	if pattern == "" {
		return
	}
	m.first[pattern[0]] = true
	n := int32(0)
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		nx, ok := m.nodes[n].next[c]
		if !ok {
			if m.nodes[n].next == nil {
				m.nodes[n].next = make(map[byte]int32)
			}
			nx = int32(len(m.nodes))
			m.nodes[n].next[c] = nx
			m.nodes = append(m.nodes, hfTrieNode{tok: -1})
		}
		n = nx
	}
	if m.nodes[n].tok < 0 { // the first of duplicate patterns wins
		m.nodes[n].tok = tok
	}
}

func (m *hfMatcher) longestAt(s string, i int) (tok, end int) {
	tok, end = -1, -1
	n := int32(0)
	for j := i; j < len(s); j++ {
		nx, ok := m.nodes[n].next[s[j]]
		if !ok {
			break
		}
		n = nx
		if m.nodes[n].tok >= 0 {
			tok, end = m.nodes[n].tok, j+1
		}
	}
	return tok, end
}

// bpe appends the ids of one pre-token (the library's BPE.tokenize).
func (t *HFTokenizer) bpe(w string, out []uint32) []uint32 {
	if w == "" {
		return out
	}
	if t.ignoreMerges {
		if id, ok := t.vocab[w]; ok {
			return append(out, id)
		}
	}
	if len(w) >= hfCacheWordMax {
		return append(out, t.mergeWord(w)...)
	}
	sh := &t.cache[maphash.String(hfCacheSeed, w)%hfCacheShards]
	sh.RLock()
	ids, ok := sh.m[w]
	sh.RUnlock()
	if ok {
		return append(out, ids...)
	}
	ids = t.mergeWord(w)
	if t.cacheN.Load() < hfCacheMax {
		sh.Lock()
		if sh.m == nil {
			sh.m = make(map[string][]uint32)
		}
		if _, ok := sh.m[w]; !ok {
			sh.m[strings.Clone(w)] = ids
			t.cacheN.Add(1)
		}
		sh.Unlock()
	}
	return append(out, ids...)
}

// mergeWord is the library's BPE.merge_word: the word's characters (with
// the continuing-subword prefix and end-of-word suffix) become parts, by
// vocabulary id, byte fallback or unk, and bpeMerge applies the merges table.
func (t *HFTokenizer) mergeWord(w string) []uint32 {
	var buf [32]bpePart
	parts := buf[:0]
	if len(w) > len(buf) {
		parts = make([]bpePart, 0, len(w))
	}
	add := func(id uint32) { parts = append(parts, bpePart{id: id}) }
	unkPending := false
	for i := 0; i < len(w); {
		_, n := utf8.DecodeRuneInString(w[i:])
		s := w[i : i+n]
		if i > 0 && t.prefix != "" {
			s = t.prefix + s
		}
		if i+n == len(w) && t.suffix != "" {
			s += t.suffix
		}
		i += n
		if id, ok := t.vocab[s]; ok {
			if unkPending {
				add(t.unkID)
				unkPending = false
			}
			add(id)
			continue
		}
		if t.byteFallback {
			all := true
			for k := 0; k < len(s); k++ {
				if t.byteIDs[s[k]] < 0 {
					all = false
					break
				}
			}
			if all {
				for k := 0; k < len(s); k++ {
					add(uint32(t.byteIDs[s[k]]))
				}
				continue
			}
		}
		if t.hasUnk {
			if unkPending && !t.fuseUnk {
				add(t.unkID)
			}
			unkPending = true
		}
	}
	if unkPending {
		add(t.unkID)
	}
	linkParts(parts)
	rule := func(left, right uint32, _, _ int32) (bpeRule, bool) {
		m, ok := t.merges[hfPair(left, right)]
		return m, ok
	}
	var heap [32]mergeCand
	return bpeMerge(0, parts, rule, heap[:0], make([]uint32, 0, len(parts)))
}

func hfPair(a, b uint32) uint64 { return uint64(a)<<32 | uint64(b) }

// ---- normalizers ----

type hfNormalizer interface{ normalize(string) string }

type hfPrepend struct{ s string }

func (p hfPrepend) normalize(s string) string {
	if s == "" {
		return s
	}
	return p.s + s
}

type hfReplace struct {
	literal string
	re      *regexp.Regexp // nil for a literal pattern
	content string
}

func (r hfReplace) normalize(s string) string { return r.replace(s) }

func (r hfReplace) replace(s string) string {
	if r.re != nil {
		return r.re.ReplaceAllLiteralString(s, r.content)
	}
	return strings.ReplaceAll(s, r.literal, r.content)
}

type hfUnicodeNorm struct{ f norm.Form }

func (u hfUnicodeNorm) normalize(s string) string { return u.f.String(s) }

// ---- pre-tokenizers ----

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
	type part struct {
		start, end int
		match      bool
	}
	var parts []part
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], delim) {
			parts = append(parts, part{i, i + len(delim), true})
			i += len(delim)
			continue
		}
		j := strings.Index(s[i:], delim)
		if j < 0 {
			j = len(s) - i
		}
		parts = append(parts, part{i, i + j, false})
		i += j
	}
	// Fold from the end, as the library does.
	var acc []part
	prevMatch := false
	for k := len(parts) - 1; k >= 0; k-- {
		pt := parts[k]
		if pt.match && !prevMatch && len(acc) > 0 {
			acc[len(acc)-1].start = pt.start
		} else {
			acc = append(acc, pt)
		}
		prevMatch = pt.match
	}
	for k := len(acc) - 1; k >= 0; k-- {
		out = append(out, hfPiece{s[acc[k].start:acc[k].end], first && acc[k].start == 0})
	}
	return out
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

// ---- decoders ----

type hfDecoder interface{ decode(toks []string) []string }

type hfByteLevelDecoder struct{}

func (hfByteLevelDecoder) decode(toks []string) []string {
	var buf []byte
	for _, tok := range toks {
		start := len(buf)
		ok := true
		for _, r := range tok {
			if r < 0 || int(r) >= len(byteLevelBytes) || byteLevelBytes[r] < 0 {
				ok = false
				break
			}
			buf = append(buf, byte(byteLevelBytes[r]))
		}
		if !ok {
			buf = append(buf[:start], tok...)
		}
	}
	return []string{lossyUTF8(buf)}
}

type hfReplaceDecoder struct{ r hfReplace }

func (d hfReplaceDecoder) decode(toks []string) []string {
	for i, t := range toks {
		toks[i] = d.r.replace(t)
	}
	return toks
}

type hfByteFallbackDecoder struct{}

// byteFallbackValue parses a <0xXX> token as the library does (Rust's
// u8::from_str_radix, which accepts a leading '+').
func byteFallbackValue(tok string) (byte, bool) {
	if len(tok) != 6 || !strings.HasPrefix(tok, "<0x") || tok[5] != '>' {
		return 0, false
	}
	h := tok[3:5]
	if h[0] == '+' {
		h = h[1:]
	}
	v, err := strconv.ParseUint(h, 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}

func (hfByteFallbackDecoder) decode(toks []string) []string {
	out := make([]string, 0, len(toks))
	var pending []byte
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if utf8.Valid(pending) {
			out = append(out, string(pending))
		} else {
			for range pending {
				out = append(out, "\uFFFD")
			}
		}
		pending = pending[:0]
	}
	for _, t := range toks {
		if b, ok := byteFallbackValue(t); ok {
			pending = append(pending, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

type hfFuseDecoder struct{}

func (hfFuseDecoder) decode(toks []string) []string { return []string{strings.Join(toks, "")} }

type hfStripDecoder struct {
	content     rune
	start, stop int
}

func (d hfStripDecoder) decode(toks []string) []string {
	for i, t := range toks {
		rs := []rune(t)
		lo := 0
		for k := 0; k < d.start && k < len(rs) && rs[k] == d.content; k++ {
			lo = k + 1
		}
		hi := len(rs)
		for k := 0; k < d.stop; k++ {
			j := len(rs) - k - 1
			if j < lo || rs[j] != d.content {
				break
			}
			hi = j
		}
		toks[i] = string(rs[lo:hi])
	}
	return toks
}

type hfMetaspaceDecoder struct {
	repl   rune
	scheme int
}

func (d hfMetaspaceDecoder) decode(toks []string) []string {
	for i, t := range toks {
		var sb strings.Builder
		for _, r := range t {
			switch {
			case r != d.repl:
				sb.WriteRune(r)
			case i == 0 && d.scheme != hfPrependNever:
			default:
				sb.WriteByte(' ')
			}
		}
		toks[i] = sb.String()
	}
	return toks
}

// lossyUTF8 is Rust's String::from_utf8_lossy: each maximal invalid
// subsequence becomes one U+FFFD.
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			sb.WriteByte(b[i])
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || n > 1 {
			sb.Write(b[i : i+n])
			i += n
			continue
		}
		sb.WriteString("\uFFFD")
		i += invalidUTF8Len(b[i:])
	}
	return sb.String()
}

// invalidUTF8Len is the length of the maximal invalid subsequence at the
// start of b (b[0] starts no valid character).
func invalidUTF8Len(b []byte) int {
	c := b[0]
	cont := func(k int) bool { return k < len(b) && b[k]&0xC0 == 0x80 }
	in := func(k int, lo, hi byte) bool { return k < len(b) && b[k] >= lo && b[k] <= hi }
	switch {
	case c >= 0xE0 && c <= 0xEF:
		var ok bool
		switch c {
		case 0xE0:
			ok = in(1, 0xA0, 0xBF)
		case 0xED:
			ok = in(1, 0x80, 0x9F)
		default:
			ok = in(1, 0x80, 0xBF)
		}
		if !ok {
			return 1
		}
		return 2 // the third byte is missing or not a continuation
	case c >= 0xF0 && c <= 0xF4:
		var ok bool
		switch c {
		case 0xF0:
			ok = in(1, 0x90, 0xBF)
		case 0xF4:
			ok = in(1, 0x80, 0x8F)
		default:
			ok = in(1, 0x80, 0xBF)
		}
		if !ok {
			return 1
		}
		if !cont(2) {
			return 2
		}
		return 3
	}
	return 1
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
	// \s+(?!\S)|\s+
	if end == len(s) {
		return end
	}
	_, last := utf8.DecodeLastRuneInString(s[i:end])
	if end-last > i {
		return end - last
	}
	return end
}

// ---- loading ----

type hfFileJSON struct {
	AddedTokens   []hfAddedJSON   `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

type hfAddedJSON struct {
	ID         *uint32 `json:"id"`
	Content    string  `json:"content"`
	SingleWord bool    `json:"single_word"`
	Lstrip     bool    `json:"lstrip"`
	Rstrip     bool    `json:"rstrip"`
	Normalized *bool   `json:"normalized"`
	Special    bool    `json:"special"`
}

type hfModelJSON struct {
	Type                    string            `json:"type"`
	Vocab                   map[string]uint32 `json:"vocab"`
	Merges                  []json.RawMessage `json:"merges"`
	UnkToken                *string           `json:"unk_token"`
	ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	FuseUnk                 bool              `json:"fuse_unk"`
	ByteFallback            bool              `json:"byte_fallback"`
	IgnoreMerges            bool              `json:"ignore_merges"`
}

// hfTyped reads the type of a component.
type hfTyped struct {
	Type string `json:"type"`
}

func isJSONNull(r json.RawMessage) bool {
	r = bytes.TrimSpace(r)
	return len(r) == 0 || string(r) == "null"
}

func parseHFTokenizer(raw []byte) (*HFTokenizer, error) {
	var f hfFileJSON
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("not a tokenizer.json: %w", err)
	}
	if isJSONNull(f.Model) {
		return nil, errors.New(`no "model"`)
	}
	var mt struct {
		Type   string          `json:"type"`
		Merges json.RawMessage `json:"merges"`
	}
	if err := json.Unmarshal(f.Model, &mt); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if mt.Type == "" && mt.Merges != nil {
		mt.Type = "BPE" // files written before "type" was stored
	}
	if mt.Type != "BPE" {
		return nil, fmt.Errorf("model type %q is not supported (only BPE)", mt.Type)
	}
	var m hfModelJSON
	if err := json.Unmarshal(f.Model, &m); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if len(m.Vocab) == 0 {
		return nil, errors.New("model has no vocab")
	}
	t := &HFTokenizer{
		vocab:        m.Vocab,
		byteFallback: m.ByteFallback,
		fuseUnk:      m.FuseUnk,
		ignoreMerges: m.IgnoreMerges,
	}
	if m.ContinuingSubwordPrefix != nil {
		t.prefix = *m.ContinuingSubwordPrefix
	}
	if m.EndOfWordSuffix != nil {
		t.suffix = *m.EndOfWordSuffix
	}
	if m.UnkToken != nil {
		id, ok := m.Vocab[*m.UnkToken]
		if !ok {
			return nil, fmt.Errorf("unk_token %q is not in the vocabulary", *m.UnkToken)
		}
		t.hasUnk, t.unkID = true, id
	}
	for b := range 256 {
		t.byteIDs[b] = -1
		if id, ok := m.Vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			t.byteIDs[b] = int64(id)
		}
	}
	if err := t.parseMerges(m.Merges); err != nil {
		return nil, err
	}

	maxID := uint32(0)
	for _, id := range m.Vocab {
		maxID = max(maxID, id)
	}
	// Added tokens keep the model's id when the model has the token (as the
	// library assigns them), else the id in the file.
	seen := map[string]bool{}
	for i, a := range f.AddedTokens {
		if a.Content == "" || seen[a.Content] {
			continue
		}
		seen[a.Content] = true
		id, ok := m.Vocab[a.Content]
		if !ok {
			if a.ID == nil {
				return nil, fmt.Errorf("added token %d (%q) has no id", i, a.Content)
			}
			id = *a.ID
		}
		normalized := !a.Special
		if a.Normalized != nil {
			normalized = *a.Normalized
		}
		t.added = append(t.added, hfAdded{id: id, content: a.Content, special: a.Special, lstrip: a.Lstrip,
			rstrip: a.Rstrip, singleWord: a.SingleWord, normalize: normalized})
		maxID = max(maxID, id)
	}
	if maxID >= hfMaxID {
		return nil, fmt.Errorf("token id %d is too large (limit %d)", maxID, hfMaxID-1)
	}
	t.vocabSize = int(maxID) + 1
	t.idToTok = make([]string, t.vocabSize)
	t.hasTok = make([]bool, t.vocabSize)
	for s, id := range m.Vocab {
		t.idToTok[id], t.hasTok[id] = s, true
	}

	var err error
	if t.normalizer, err = parseHFNormalizer(f.Normalizer); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	// An added token decodes to its text, normalized if it is matched on
	// normalized text (as the library decodes it: LLaMA-2's normalizer makes
	// a normalized "<tool>" decode as " <tool>").
	for _, a := range t.added {
		t.idToTok[a.id], t.hasTok[a.id] = t.addedPattern(a), true
	}
	if t.preTok, err = parseHFPreTokenizer(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	if !isJSONNull(f.Decoder) {
		t.hasDecoder = true
		if t.decoder, err = parseHFDecoder(f.Decoder); err != nil {
			return nil, fmt.Errorf("decoder: %w", err)
		}
	}

	// Special tokens first, then the others, as the library orders them;
	// tokens matched on normalized text are normalized themselves.
	t.rawMatch, t.normMatch = newHFMatcher(), newHFMatcher()
	for _, special := range []bool{true, false} {
		for k, a := range t.added {
			if a.special != special {
				continue
			}
			if a.normalize {
				t.normMatch.add(t.addedPattern(a), k)
			} else {
				t.rawMatch.add(a.content, k)
			}
		}
	}

	eot, ok := uint32(0), false
	for _, name := range hfEOTNames {
		if eot, ok = t.TokenID(name); ok {
			break
		}
	}
	if !ok {
		return nil, fmt.Errorf("no end-of-text token (none of %s)", strings.Join(hfEOTNames, " "))
	}
	t.eot = eot
	if t.bos, t.hasBOS, err = t.parseBOS(f.PostProcessor); err != nil {
		return nil, fmt.Errorf("post_processor: %w", err)
	}
	if !t.hasBOS {
		for _, name := range hfBOSNames {
			for _, a := range t.added {
				if a.special && a.content == name {
					t.bos, t.hasBOS = a.id, true
					break
				}
			}
			if t.hasBOS {
				break
			}
		}
	}
	return t, nil
}

// addedPattern is the text an added token is matched as: its content,
// normalized when the token is matched on normalized text.
func (t *HFTokenizer) addedPattern(a hfAdded) string {
	p := a.content
	if a.normalize {
		for _, n := range t.normalizer {
			p = n.normalize(p)
		}
	}
	return p
}

func (t *HFTokenizer) parseMerges(raw []json.RawMessage) error {
	t.merges = make(map[uint64]bpeRule, len(raw))
	rank := 0
	for i, r := range raw {
		var a, b string
		var s string
		if err := json.Unmarshal(r, &s); err == nil {
			if strings.HasPrefix(s, "#version") {
				continue
			}
			parts := strings.Split(s, " ")
			if len(parts) != 2 {
				return fmt.Errorf("merge %d (%q) is not two tokens separated by a space", i, s)
			}
			a, b = parts[0], parts[1]
		} else {
			var pair []string
			if err := json.Unmarshal(r, &pair); err != nil || len(pair) != 2 {
				return fmt.Errorf("merge %d (%s) is neither \"a b\" nor [a, b]", i, r)
			}
			a, b = pair[0], pair[1]
		}
		aID, ok := t.vocab[a]
		if !ok {
			return fmt.Errorf("merge %d (%q %q): %q is not in the vocabulary", i, a, b, a)
		}
		bID, ok := t.vocab[b]
		if !ok {
			return fmt.Errorf("merge %d (%q %q): %q is not in the vocabulary", i, a, b, b)
		}
		if len(b) < len(t.prefix) {
			return fmt.Errorf("merge %d (%q %q): %q is shorter than continuing_subword_prefix", i, a, b, b)
		}
		merged := a + b[len(t.prefix):]
		id, ok := t.vocab[merged]
		if !ok {
			return fmt.Errorf("merge %d (%q %q): %q is not in the vocabulary", i, a, b, merged)
		}
		t.merges[hfPair(aID, bID)] = bpeRule{uint32(rank), id}
		rank++
	}
	return nil
}

// parseBOS finds the token a TemplateProcessing (also inside a Sequence),
// RobertaProcessing or BertProcessing puts before a single sequence.
func (t *HFTokenizer) parseBOS(raw json.RawMessage) (uint32, bool, error) {
	if isJSONNull(raw) {
		return 0, false, nil
	}
	var p struct {
		Type       string            `json:"type"`
		Processors []json.RawMessage `json:"processors"`
		Single     []struct {
			SpecialToken *struct {
				ID string `json:"id"`
			} `json:"SpecialToken"`
			Sequence json.RawMessage `json:"Sequence"`
		} `json:"single"`
		SpecialTokens map[string]struct {
			IDs []uint32 `json:"ids"`
		} `json:"special_tokens"`
		Cls []json.RawMessage `json:"cls"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return 0, false, err
	}
	switch p.Type {
	case "Sequence":
		for _, r := range p.Processors {
			if id, ok, err := t.parseBOS(r); err != nil || ok {
				return id, ok, err
			}
		}
	case "TemplateProcessing":
		var lead []string
		for _, piece := range p.Single {
			if piece.SpecialToken == nil {
				break
			}
			lead = append(lead, piece.SpecialToken.ID)
		}
		if len(lead) == 1 {
			if st, ok := p.SpecialTokens[lead[0]]; ok && len(st.IDs) == 1 {
				return st.IDs[0], true, nil
			}
		}
	case "RobertaProcessing", "BertProcessing":
		if len(p.Cls) == 2 {
			var id uint32
			if err := json.Unmarshal(p.Cls[1], &id); err == nil {
				return id, true, nil
			}
		}
	}
	return 0, false, nil
}

// hfPattern reads {"String": s} or {"Regex": r}.
func hfPattern(raw json.RawMessage) (literal string, regex string, isRegex bool, err error) {
	var p struct {
		String *string `json:"String"`
		Regex  *string `json:"Regex"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", "", false, fmt.Errorf("pattern: %w", err)
	}
	switch {
	case p.String != nil:
		return *p.String, "", false, nil
	case p.Regex != nil:
		return "", *p.Regex, true, nil
	}
	return "", "", false, fmt.Errorf("pattern %s is neither String nor Regex", raw)
}

func parseHFReplace(raw json.RawMessage) (hfReplace, error) {
	var r struct {
		Pattern json.RawMessage `json:"pattern"`
		Content string          `json:"content"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return hfReplace{}, err
	}
	lit, re, isRe, err := hfPattern(r.Pattern)
	if err != nil {
		return hfReplace{}, err
	}
	if !isRe {
		if lit == "" {
			return hfReplace{}, errors.New("Replace with an empty pattern")
		}
		return hfReplace{literal: lit, content: r.Content}, nil
	}
	rx, err := regexp.Compile(re)
	if err != nil {
		return hfReplace{}, fmt.Errorf("Replace regex %q is not supported: %w", re, err)
	}
	return hfReplace{re: rx, content: r.Content}, nil
}

func parseHFNormalizer(raw json.RawMessage) ([]hfNormalizer, error) {
	if isJSONNull(raw) {
		return nil, nil
	}
	var ty hfTyped
	if err := json.Unmarshal(raw, &ty); err != nil {
		return nil, err
	}
	switch ty.Type {
	case "Sequence":
		return parseHFSequence(raw, "normalizers", parseHFNormalizer)
	case "Prepend":
		var p struct {
			Prepend string `json:"prepend"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, err
		}
		return []hfNormalizer{hfPrepend{p.Prepend}}, nil
	case "Replace":
		r, err := parseHFReplace(raw)
		if err != nil {
			return nil, err
		}
		return []hfNormalizer{r}, nil
	case "NFC":
		return []hfNormalizer{hfUnicodeNorm{norm.NFC}}, nil
	case "NFD":
		return []hfNormalizer{hfUnicodeNorm{norm.NFD}}, nil
	case "NFKC":
		return []hfNormalizer{hfUnicodeNorm{norm.NFKC}}, nil
	case "NFKD":
		return []hfNormalizer{hfUnicodeNorm{norm.NFKD}}, nil
	}
	return nil, fmt.Errorf("normalizer %q is not supported", ty.Type)
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
		return "", 0, false, fmt.Errorf("Metaspace replacement %q is not one character", m.Replacement)
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
			return "", 0, false, fmt.Errorf("Metaspace prepend_scheme %q is not supported", *m.PrependScheme)
		}
	}
	if m.AddPrefixSpace != nil && !*m.AddPrefixSpace {
		scheme = hfPrependNever
	}
	return m.Replacement, scheme, m.Split == nil || *m.Split, nil
}

func parseHFPreTokenizer(raw json.RawMessage) ([]hfPreTokenizer, error) {
	if isJSONNull(raw) {
		return nil, nil
	}
	var ty hfTyped
	if err := json.Unmarshal(raw, &ty); err != nil {
		return nil, err
	}
	switch ty.Type {
	case "Sequence":
		var s struct {
			PreTokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		var out []hfPreTokenizer
		for _, r := range s.PreTokenizers {
			p, err := parseHFPreTokenizer(r)
			if err != nil {
				return nil, err
			}
			for _, q := range p {
				if bl, ok := q.(hfByteLevel); ok && !bl.addPrefixSpace && bl.split == nil && len(out) > 0 {
					if rs, ok := out[len(out)-1].(hfRegexSplit); ok {
						out[len(out)-1] = hfByteLevel{split: rs.next}
						continue
					}
				}
				out = append(out, q)
			}
		}
		return out, nil
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
		_, re, isRe, err := hfPattern(s.Pattern)
		if err != nil {
			return nil, err
		}
		if !isRe {
			return nil, fmt.Errorf("Split on a String pattern is not supported (pattern %s)", s.Pattern)
		}
		if s.Behavior != "Isolated" || s.Invert {
			return nil, fmt.Errorf("Split with behavior %q invert %v is not supported (only Isolated)", s.Behavior, s.Invert)
		}
		switch re {
		case hfGPT2Pattern:
			return []hfPreTokenizer{hfRegexSplit{nextPiece}}, nil
		case hfLlama3Pattern:
			return []hfPreTokenizer{hfRegexSplit{llama3Splitter(3)}}, nil
		case hfQwen2Pattern:
			return []hfPreTokenizer{hfRegexSplit{llama3Splitter(1)}}, nil
		}
		return nil, fmt.Errorf("Split regex %q is not supported (known: the GPT-2, LLaMA-3 and Qwen2 patterns)", re)
	case "Metaspace":
		repl, scheme, split, err := parseMetaspace(raw)
		if err != nil {
			return nil, err
		}
		return []hfPreTokenizer{hfMetaspace{repl, scheme, split}}, nil
	}
	return nil, fmt.Errorf("pre-tokenizer %q is not supported", ty.Type)
}

func parseHFDecoder(raw json.RawMessage) ([]hfDecoder, error) {
	if isJSONNull(raw) {
		return nil, nil
	}
	var ty hfTyped
	if err := json.Unmarshal(raw, &ty); err != nil {
		return nil, err
	}
	switch ty.Type {
	case "Sequence":
		return parseHFSequence(raw, "decoders", parseHFDecoder)
	case "ByteLevel":
		return []hfDecoder{hfByteLevelDecoder{}}, nil
	case "Replace":
		r, err := parseHFReplace(raw)
		if err != nil {
			return nil, err
		}
		return []hfDecoder{hfReplaceDecoder{r}}, nil
	case "ByteFallback":
		return []hfDecoder{hfByteFallbackDecoder{}}, nil
	case "Fuse":
		return []hfDecoder{hfFuseDecoder{}}, nil
	case "Strip":
		var s struct {
			Content string `json:"content"`
			Start   int    `json:"start"`
			Stop    int    `json:"stop"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		if utf8.RuneCountInString(s.Content) != 1 || s.Start < 0 || s.Stop < 0 {
			return nil, fmt.Errorf("Strip content %q start %d stop %d is not supported", s.Content, s.Start, s.Stop)
		}
		r, _ := utf8.DecodeRuneInString(s.Content)
		return []hfDecoder{hfStripDecoder{r, s.Start, s.Stop}}, nil
	case "Metaspace":
		repl, scheme, _, err := parseMetaspace(raw)
		if err != nil {
			return nil, err
		}
		r, _ := utf8.DecodeRuneInString(repl)
		return []hfDecoder{hfMetaspaceDecoder{r, scheme}}, nil
	}
	return nil, fmt.Errorf("decoder %q is not supported", ty.Type)
}

// parseHFSequence parses a {"type": "Sequence", field: [...]} component by
// parsing each member with parse and concatenating the results.
func parseHFSequence[T any](raw json.RawMessage, field string, parse func(json.RawMessage) ([]T, error)) ([]T, error) {
	var s map[string]json.RawMessage
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	var members []json.RawMessage
	if s[field] == nil {
		return nil, nil
	}
	if err := json.Unmarshal(s[field], &members); err != nil {
		return nil, fmt.Errorf("Sequence %s: %w", field, err)
	}
	var out []T
	for _, r := range members {
		v, err := parse(r)
		if err != nil {
			return nil, err
		}
		out = append(out, v...)
	}
	return out, nil
}
