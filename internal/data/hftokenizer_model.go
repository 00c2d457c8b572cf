// This file holds the model of a tokenizer.json: BPE over a vocabulary and a
// merges table, with the cache of merged pre-tokens.

package data

import (
	"encoding/json"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"unicode/utf8"
)

const (
	hfCacheMax     = 1 << 17 // pre-tokens whose BPE result is cached, at most
	hfCacheShards  = 64
	hfCacheWordMax = 256 // longer pre-tokens (LLaMA-2 has no pre-tokenizer: whole texts) are not cached
)

type hfCacheShard struct {
	sync.RWMutex
	m map[string][]uint32
}

var hfCacheSeed = maphash.MakeSeed()

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
