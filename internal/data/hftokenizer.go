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
//     Strip(" ", 1, 0)] or Metaspace; Gemma-3's variant: the normalizer
//     Replace(" ", "▁"), a Split pre-tokenizer on the String " "
//     (hftokenizer_split.go, every split behavior) and no Strip.
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
// Split regexes are hand-written scanners for the patterns above only; a file
// with another pre-tokenizer, normalizer, decoder or model is refused with an
// error naming it.
//
// The components live beside it, each with its parsing:
// hftokenizer_model.go (BPE and its cache), hftokenizer_normalize.go,
// hftokenizer_pretokenize.go and hftokenizer_decode.go; hftokenizer_load.go
// reads the file, and bpemerge.go holds the merge routine GPT-2's codec
// shares.

package data

import (
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"
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

type hfAdded struct {
	id                                             uint32
	content                                        string
	special, lstrip, rstrip, singleWord, normalize bool
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
