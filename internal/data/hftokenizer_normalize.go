// This file holds the tokenizer.json normalizers HFTokenizer applies
// (Prepend, Replace, NFC/NFD/NFKC/NFKD).

package data

import (
	"regexp"
	"strings"

	"golang.org/x/text/unicode/norm"
)

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
