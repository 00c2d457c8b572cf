package data

// This file holds the one BPE merge routine both encoders use: GPT-2's
// byte-level codec (bpe.go) and the tokenizer.json model (hftokenizer.go).
// They differ only in how a pair of adjacent parts is looked up (by the
// merged string's rank, or by the pair of ids in the merges table), so the
// lookup is the caller's and the merge order is here.

import "math"

const noMerge = math.MaxUint32

// bpePart is one part of a word while it is merged: its token id, the byte
// offset in the word where it starts (-1 once merged into its left
// neighbour), its neighbours (-1 at the ends) and the rule for merging it
// with its right neighbour (rank noMerge: none). Kept small: long words hold
// one per byte.
type bpePart struct {
	id         uint32
	start      int32
	prev, next int32
	pair       bpeRule
}

// bpeRule is what merging two adjacent parts gives: the merge's rank (lower
// merges first) and the merged token. The caller's rule function looks it up
// from the two parts' ids and the span of the word they cover together.
type bpeRule struct{ rank, id uint32 }

// bpeMerge merges parts (already linked in order) until no adjacent pair has
// a rule: always the pair of lowest rank, leftmost first, as both tiktoken's
// byte_pair_merge and the tokenizers library's Word.merge_all do. A min-heap
// of candidates ordered by (rank, position) keeps it O(n log n); a popped
// candidate that no longer matches its part's current pair rule is stale (a
// neighbour merged since) and skipped. wordLen ends the last part's span;
// heap is scratch the caller may reuse; the surviving ids are appended to out.
func bpeMerge(wordLen int32, parts []bpePart, rule func(leftID, rightID uint32, start, end int32) (bpeRule, bool), heap mergeQueue, out []uint32) []uint32 {
	h := heap[:0]
	// setPair records part k's rule with its right neighbour and queues it.
	setPair := func(k int32) {
		p := &parts[k]
		p.pair = bpeRule{rank: noMerge}
		if p.next < 0 {
			return
		}
		q := &parts[p.next]
		end := wordLen
		if q.next >= 0 {
			end = parts[q.next].start
		}
		if r, ok := rule(p.id, q.id, p.start, end); ok {
			p.pair = r
			h = h.push(mergeCand{r.rank, uint32(k), r.id})
		}
	}
	for k := range parts {
		setPair(int32(k))
	}
	for len(h) > 0 {
		var top mergeCand
		top, h = h.pop()
		cur := &parts[top.pos]
		if cur.start < 0 || cur.pair.rank != top.rank || cur.pair.id != top.id {
			continue
		}
		right := &parts[cur.next]
		cur.id, cur.next = top.id, right.next
		right.start = -1
		if cur.next >= 0 {
			parts[cur.next].prev = int32(top.pos)
		}
		if cur.prev >= 0 {
			setPair(cur.prev)
		}
		setPair(int32(top.pos))
	}
	for k := range parts {
		if parts[k].start >= 0 {
			out = append(out, parts[k].id)
		}
	}
	return out
}

// linkParts sets every part's neighbours to the parts beside it in the slice.
func linkParts(parts []bpePart) {
	for k := range parts {
		parts[k].prev, parts[k].next = int32(k-1), int32(k+1)
	}
	if len(parts) > 0 {
		parts[len(parts)-1].next = -1
	}
}

// mergeCand is a possible merge of the part at pos with its right neighbour
// into token id.
type mergeCand struct{ rank, pos, id uint32 }

// mergeQueue is a min-heap of merges ordered by (rank, position): the order
// in which BPE applies them.
type mergeQueue []mergeCand

func (q mergeQueue) less(a, b mergeCand) bool {
	return a.rank < b.rank || a.rank == b.rank && a.pos < b.pos
}

// push and pop take and return the queue by value, so a caller's stack
// buffer stays on the stack.
func (q mergeQueue) push(x mergeCand) mergeQueue {
	h := append(q, x)
	for k := len(h) - 1; k > 0; {
		p := (k - 1) / 2
		if !q.less(h[k], h[p]) {
			break
		}
		h[k], h[p] = h[p], h[k]
		k = p
	}
	return h
}

func (q mergeQueue) pop() (mergeCand, mergeQueue) {
	h := q
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
	return top, h
}
