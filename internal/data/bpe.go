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
	"math"
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
	// \s+(?!\S)|\s+: a whitespace run, less its last character when a
	// non-space follows and the run is longer than one character.
	end := scanClass(s, i, clsSpace)
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
	ranks map[string]uint32
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

const noMerge = math.MaxUint32

// merge appends the BPE tokens of piece: repeatedly merge the adjacent pair
// whose concatenation has the lowest rank, leftmost first (tiktoken's
// byte_pair_merge). Short pieces use a linear scan, long ones a heap.
func (c *bpeCodec) merge(piece string, out []uint32) []uint32 {
	if len(piece) == 1 {
		return append(out, c.ranks[piece])
	}
	if len(piece) >= 64 {
		return c.mergeHeap(piece, out)
	}
	// bounds[k] is the start of part k; rank[k] the rank of parts k and k+1
	// merged.
	var boundsBuf, rankBuf [65]int
	bounds := boundsBuf[:len(piece)+1]
	ranks := rankBuf[:len(piece)]
	for k := range bounds {
		bounds[k] = k
	}
	pairRank := func(k int) int {
		if k+2 >= len(bounds) {
			return noMerge
		}
		if r, ok := c.ranks[piece[bounds[k]:bounds[k+2]]]; ok {
			return int(r)
		}
		return noMerge
	}
	for k := range len(bounds) - 1 {
		ranks[k] = pairRank(k)
	}
	for len(bounds) > 2 {
		best, bestK := noMerge, -1
		for k, r := range ranks[:len(bounds)-2] {
			if r < best {
				best, bestK = r, k
			}
		}
		if bestK < 0 {
			break
		}
		bounds = append(bounds[:bestK+1], bounds[bestK+2:]...)
		ranks = append(ranks[:bestK+1], ranks[bestK+2:]...)
		ranks[bestK] = pairRank(bestK)
		if bestK > 0 {
			ranks[bestK-1] = pairRank(bestK - 1)
		}
	}
	for k := range len(bounds) - 1 {
		out = append(out, c.ranks[piece[bounds[k]:bounds[k+1]]])
	}
	return out
}

// mergeHeap is merge in O(n log n) for long pieces (long runs of spaces or
// symbols), over a linked list of parts and a min-heap of candidate pairs
// ordered by (rank, position).
func (c *bpeCodec) mergeHeap(piece string, out []uint32) []uint32 {
	n := len(piece)
	next := make([]int32, n+1) // next[i]: start of the part after the part at i; -1 at the end
	prev := make([]int32, n+1)
	rank := make([]uint32, n+1) // rank of merging the part at i with its successor
	for i := range next {
		next[i], prev[i], rank[i] = int32(i+1), int32(i-1), noMerge
	}
	next[n] = -1
	rankOf := func(i int32) uint32 {
		j := next[i]
		if j < 0 || j == int32(n) {
			return noMerge
		}
		if r, ok := c.ranks[piece[i:next[j]]]; ok {
			return r
		}
		return noMerge
	}
	var h mergeQueue
	push, pop := h.push, h.pop
	for i := int32(0); i < int32(n)-1; i++ {
		if r := rankOf(i); r != noMerge {
			rank[i] = r
			push(mergeCand{rank: r, pos: uint32(i)})
		}
	}
	for len(h) > 0 {
		top := pop()
		i := int32(top.pos)
		if rank[i] != top.rank || next[i] < 0 { // stale
			continue
		}
		j := next[i]
		k := next[j]
		rank[j] = noMerge
		next[j] = -1 // j is gone
		next[i] = k
		if k >= 0 {
			prev[k] = i
		}
		for _, b := range [2]int32{i, prev[i]} {
			if b < 0 {
				continue
			}
			rank[b] = rankOf(b)
			if rank[b] != noMerge {
				push(mergeCand{rank: rank[b], pos: uint32(b)})
			}
		}
	}
	for i := int32(0); i != int32(n); i = next[i] {
		out = append(out, c.ranks[piece[i:next[i]]])
	}
	return out
}

// mergeCand is a possible merge of the symbol at pos with its right
// neighbour; id is the merged token where the caller needs it.
type mergeCand struct{ rank, pos, id uint32 }

// mergeQueue is a min-heap of merges ordered by (rank, position): the order
// in which BPE applies them.
type mergeQueue []mergeCand

func (q mergeQueue) less(a, b mergeCand) bool {
	return a.rank < b.rank || a.rank == b.rank && a.pos < b.pos
}

func (q *mergeQueue) push(x mergeCand) {
	h := append(*q, x)
	for k := len(h) - 1; k > 0; {
		p := (k - 1) / 2
		if !q.less(h[k], h[p]) {
			break
		}
		h[k], h[p] = h[p], h[k]
		k = p
	}
	*q = h
}

func (q *mergeQueue) pop() mergeCand {
	h := *q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for k := 0; ; {
		l, r, m := 2*k+1, 2*k+2, k
		if l < len(h) && q.less(h[l], h[m]) {
			m = l
		}
		if r < len(h) && q.less(h[r], h[m]) {
			m = r
		}
		if m == k {
			break
		}
		h[k], h[m] = h[m], h[k]
		k = m
	}
	*q = h
	return top
}
