// This file holds the Split pre-tokenizer on a String pattern (Gemma-3's
// tokenizer.json splits on " " MergedWithPrevious) and the library's split
// behaviors, which Metaspace's split shares: NormalizedString::split of the
// `tokenizers` library, whose doc gives, splitting "the-final--countdown"
// on "-": Isolated "the" "-" "final" "-" "-" "countdown", MergedWithPrevious
// "the-" "final-" "-" "countdown", MergedWithNext "the" "-final" "-"
// "-countdown"; empty pieces are dropped.

package data

import (
	"fmt"
	"strings"
)

// hfBehavior is a SplitDelimiterBehavior.
type hfBehavior int

const (
	hfRemoved hfBehavior = iota
	hfIsolated
	hfMergedWithPrevious
	hfMergedWithNext
	hfContiguous
)

var hfBehaviors = map[string]hfBehavior{"Removed": hfRemoved, "Isolated": hfIsolated,
	"MergedWithPrevious": hfMergedWithPrevious, "MergedWithNext": hfMergedWithNext, "Contiguous": hfContiguous}

// hfPart is a piece of a string: [start, end) and whether the pattern
// matched it (after an inversion, whether it did not).
type hfPart struct {
	start, end int
	match      bool
}

// literalParts is Pattern::find_matches of a String pattern: each
// non-overlapping occurrence of lit, left to right, and the text between
// (no empty gaps). An empty pattern matches nothing.
func literalParts(s, lit string, invert bool) []hfPart {
	if lit == "" || s == "" {
		return []hfPart{{0, len(s), invert}}
	}
	var parts []hfPart
	prev := 0
	for i := 0; ; {
		j := strings.Index(s[i:], lit)
		if j < 0 {
			break
		}
		if i+j != prev {
			parts = append(parts, hfPart{prev, i + j, invert})
		}
		parts = append(parts, hfPart{i + j, i + j + len(lit), !invert})
		prev = i + j + len(lit)
		i = prev
	}
	if prev != len(s) {
		parts = append(parts, hfPart{prev, len(s), invert})
	}
	return parts
}

// splitParts applies behavior b to parts as the library does and returns
// the pieces kept, in order.
func splitParts(parts []hfPart, b hfBehavior) []hfPart {
	var out []hfPart
	prevMatch := false
	switch b {
	case hfRemoved:
		for _, p := range parts {
			if !p.match {
				out = append(out, p)
			}
		}
	case hfIsolated:
		out = parts
	case hfContiguous:
		for _, p := range parts {
			if p.match == prevMatch && len(out) > 0 {
				out[len(out)-1].end = p.end
			} else {
				out = append(out, p)
			}
			prevMatch = p.match
		}
	case hfMergedWithPrevious:
		for _, p := range parts {
			if p.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = p.end
			} else {
				out = append(out, p)
			}
			prevMatch = p.match
		}
	case hfMergedWithNext: // folded from the end, as the library does
		for k := len(parts) - 1; k >= 0; k-- {
			p := parts[k]
			if p.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].start = p.start
			} else {
				out = append(out, p)
			}
			prevMatch = p.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

// splitPieces cuts s into the kept, non-empty pieces.
func splitPieces(s string, parts []hfPart, first bool, out []hfPiece) []hfPiece {
	for _, p := range parts {
		if p.start < p.end {
			out = append(out, hfPiece{s[p.start:p.end], first && p.start == 0})
		}
	}
	return out
}

// hfStringSplit is a Split pre-tokenizer on a String pattern.
type hfStringSplit struct {
	lit      string
	behavior hfBehavior
	invert   bool
}

func (x hfStringSplit) apply(t *HFTokenizer, next int, p hfPiece, out []uint32) []uint32 {
	for _, q := range splitPieces(p.s, splitParts(literalParts(p.s, x.lit, x.invert), x.behavior), p.first, nil) {
		out = t.preTokenize(next, q, out)
	}
	return out
}

// parseSplitBehavior reads a Split's behavior.
func parseSplitBehavior(name string) (hfBehavior, error) {
	b, ok := hfBehaviors[name]
	if !ok {
		return 0, fmt.Errorf("pre-tokenizer Split behavior %q is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous", name)
	}
	return b, nil
}
