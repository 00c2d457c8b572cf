// This file holds the tokenizer.json decoders (ByteLevel, Replace,
// ByteFallback, Fuse, Strip, Metaspace), their parsing and lossy UTF-8
// rendering.

package data

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

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

// parseHFDecoder reads a tokenizer.json "decoder".
func parseHFDecoder(raw json.RawMessage) ([]hfDecoder, error) {
	return parseHFComponent(raw, "decoders", hfDecoderOf)
}

// hfDecoderOf reads a decoder of type typ other than Sequence.
func hfDecoderOf(typ string, raw json.RawMessage) ([]hfDecoder, error) {
	switch typ {
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
			return nil, fmt.Errorf("decoder Strip with content %q start %d stop %d is not supported", s.Content, s.Start, s.Stop)
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
	return nil, fmt.Errorf("decoder %q is not supported", typ)
}
