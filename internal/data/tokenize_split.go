// This file decides the train/validation split of `compact tokenize`.
// With a fraction the split is by tokens, at document boundaries where
// possible: a document goes whole to validation while that keeps the
// validation tokens at or below the fraction of all tokens seen so far, and
// at the end the tail of the last training document tops validation up to
// the fraction exactly. So one input.txt (nanoGPT's start) is split as
// nanoGPT splits it, its last tokens for validation, and two documents no
// longer give 50% validation at --val-fraction 0.01. The default corpus
// keeps its split of every k-th document (ValEvery).

package data

import (
	"fmt"
	"math"
	"path/filepath"
)

// valSplit tracks the split while documents stream through the collector.
type valSplit struct {
	fraction float64 // token fraction for validation (0: none)
	every    int     // > 0: every k-th document goes to validation instead
	total    int64   // tokens seen so far, both splits
	val      int64   // tokens sent to validation so far
}

// toVal reports whether document i of n tokens goes whole to validation,
// and counts it.
func (s *valSplit) toVal(i, n int) bool {
	s.total += int64(n)
	var v bool
	switch {
	case s.every > 0:
		v = i%s.every == s.every-1
	case s.fraction > 0:
		v = float64(s.val+int64(n)) <= s.fraction*float64(s.total)
	}
	if v {
		s.val += int64(n)
	}
	return v
}

// tail is how many tokens of the last training document (of n tokens) move
// to validation once all docs are in: what brings validation to the
// fraction of all tokens, at least one token when there are two or more.
// Splitting by documents, it is the whole document when no other went to
// validation and there are at least two.
func (s *valSplit) tail(n, docs int) int {
	if s.every > 0 && s.val == 0 && docs >= 2 {
		return n
	}
	if s.fraction <= 0 || n == 0 {
		return 0
	}
	want := int64(math.Round(s.fraction * float64(s.total)))
	if want == 0 && s.total >= 2 {
		want = 1
	}
	return int(min(max(want-s.val, 0), int64(n)-1)) // the document's first token stays in train
}

// ValCut says which document was cut between train and validation.
type ValCut struct {
	Document int    `json:"document"` // index among the non-empty documents, from 0
	Source   string `json:"source"`   // the input file it came from
	Tokens   int64  `json:"tokens"`   // its last tokens that went to validation
	source   int    // index of Source among the inputs
}

// SplitSummary describes the split in words, for the tokenize summary.
func (r TokenizeResult) SplitSummary() string {
	total := r.TrainTokens + r.ValTokens
	if r.ValTokens == 0 || total == 0 {
		return "validation: none"
	}
	s := fmt.Sprintf("validation: %d tokens (%.2f%% of %d)", r.ValTokens, 100*float64(r.ValTokens)/float64(total), total)
	whole := r.ValDocuments
	if r.ValCut != nil {
		whole--
	}
	switch {
	case r.ValCut != nil && whole == 0 && r.Documents == 1:
		return s + fmt.Sprintf(": the last %d tokens of %s, the only document", r.ValCut.Tokens, filepath.Base(r.ValCut.Source))
	case r.ValCut != nil && whole == 0:
		return s + fmt.Sprintf(": the last %d tokens of document %d (%s); the other %d documents are too few to split whole",
			r.ValCut.Tokens, r.ValCut.Document+1, filepath.Base(r.ValCut.Source), r.Documents-1)
	case r.ValCut != nil:
		return s + fmt.Sprintf(": %d whole documents and the last %d tokens of document %d (%s)",
			whole, r.ValCut.Tokens, r.ValCut.Document+1, filepath.Base(r.ValCut.Source))
	}
	return s + fmt.Sprintf(": %d whole documents of %d", whole, r.Documents)
}
