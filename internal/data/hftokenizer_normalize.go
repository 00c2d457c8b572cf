// This file holds the tokenizer.json normalizers HFTokenizer applies
// (Prepend, Replace, NFC/NFD/NFKC/NFKD) and their parsing.

package data

import (
	"encoding/json"
	"errors"
	"fmt"
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
			return hfReplace{}, errors.New("normalizer Replace with an empty pattern")
		}
		return hfReplace{literal: lit, content: r.Content}, nil
	}
	rx, err := regexp.Compile(re)
	if err != nil {
		return hfReplace{}, fmt.Errorf("normalizer Replace regex %q is not supported: %w", re, err)
	}
	return hfReplace{re: rx, content: r.Content}, nil
}

// parseHFNormalizer reads a tokenizer.json "normalizer".
func parseHFNormalizer(raw json.RawMessage) ([]hfNormalizer, error) {
	return parseHFComponent(raw, "normalizers", hfNormalizerOf)
}

// hfNormalizerOf reads a normalizer of type typ other than Sequence.
func hfNormalizerOf(typ string, raw json.RawMessage) ([]hfNormalizer, error) {
	switch typ {
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
	return nil, fmt.Errorf("normalizer %q is not supported", typ)
}
