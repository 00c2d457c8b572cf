// Tests of the Split pre-tokenizer on a String pattern and of a tokenizer
// in Gemma-3's layout. There are no goldens from the `tokenizers` library
// for these yet (this machine has no `tokenizers`; scripts/hf_tokenizer_golden.py
// now builds gemma3 and split_string variants for the GPU machine): the
// expected pieces are the library's documented ones (NormalizedString::split
// on "the-final--countdown", pre_tokenizers.Split(" ", "merged_with_previous")
// on "How are  you?") and the ids follow from BPE by hand.

package data

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSplitStringBehaviors(t *testing.T) {
	for _, c := range []struct {
		text, lit string
		behavior  hfBehavior
		invert    bool
		want      []string
	}{
		{"the-final--countdown", "-", hfRemoved, false, []string{"the", "final", "countdown"}},
		{"the-final--countdown", "-", hfIsolated, false, []string{"the", "-", "final", "-", "-", "countdown"}},
		{"the-final--countdown", "-", hfMergedWithPrevious, false, []string{"the-", "final-", "-", "countdown"}},
		{"the-final--countdown", "-", hfMergedWithNext, false, []string{"the", "-final", "-", "-countdown"}},
		{"the-final--countdown", "-", hfContiguous, false, []string{"the", "-", "final", "--", "countdown"}},
		{"the-final--countdown", "-", hfRemoved, true, []string{"-", "-", "-"}},
		{"How are  you?", " ", hfMergedWithPrevious, false, []string{"How ", "are ", " ", "you?"}},
		{"--", "-", hfMergedWithPrevious, false, []string{"-", "-"}},
		{"abc", "", hfIsolated, false, []string{"abc"}},
		{"", "-", hfIsolated, false, nil},
	} {
		var got []string
		for _, p := range splitPieces(c.text, splitParts(literalParts(c.text, c.lit, c.invert), c.behavior), true, nil) {
			got = append(got, p.s)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("split %q on %q, behavior %d invert %v: %q, want %q", c.text, c.lit, c.behavior, c.invert, got, c.want)
		}
	}
}

// gemma3Tokenizer writes a tokenizer.json in Gemma-3's layout: normalizer
// Replace(" ", "▁"), pre-tokenizer Split(String " ", MergedWithPrevious),
// BPE with byte fallback, decoder Sequence[Replace("▁", " "), ByteFallback,
// Fuse], <bos> prepended by the post-processor, chat-turn specials.
func gemma3Tokenizer(t *testing.T) string {
	t.Helper()
	vocab := map[string]int{"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<start_of_turn>": 4, "<end_of_turn>": 5}
	for b := range 256 {
		vocab[byteToken(b)] = 6 + b
	}
	for i, s := range []string{"▁", "h", "e", "l", "o", "w", "r", "d", "he", "ll", "hell", "hello", "▁w", "or", "▁wor", "▁worl", "▁world"} {
		vocab[s] = 262 + i
	}
	added := []map[string]any{}
	for _, s := range []string{"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"} {
		added = append(added, map[string]any{"id": vocab[s], "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
	}
	j := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": added,
		"normalizer":    map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"},
		"pre_tokenizer": map[string]any{"type": "Split", "pattern": map[string]any{"String": " "}, "behavior": "MergedWithPrevious", "invert": false},
		"post_processor": map[string]any{"type": "TemplateProcessing",
			"single":         []any{map[string]any{"SpecialToken": map[string]any{"id": "<bos>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"pair":           []any{map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"special_tokens": map[string]any{"<bos>": map[string]any{"id": "<bos>", "ids": []int{2}, "tokens": []string{"<bos>"}}}},
		"decoder": map[string]any{"type": "Sequence", "decoders": []any{
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": "▁"}, "content": " "},
			map[string]any{"type": "ByteFallback"}, map[string]any{"type": "Fuse"}}},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": "<unk>", "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false, "vocab": vocab,
			"merges": [][]string{{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"▁", "w"}, {"o", "r"}, {"▁w", "or"}, {"▁wor", "l"}, {"▁worl", "d"}}},
	}
	raw, _ := json.Marshal(j)
	p := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func byteToken(b int) string {
	return "<0x" + string("0123456789ABCDEF"[b>>4]) + string("0123456789ABCDEF"[b&15]) + ">"
}

// Issue 21 item 8: Gemma-3's tokenizer.json (Split on a String pattern)
// loads and encodes as the library would.
func TestGemma3Tokenizer(t *testing.T) {
	generic, err := NewTokenizer(gemma3Tokenizer(t))
	if err != nil {
		t.Fatalf("Gemma-3 layout refused: %v", err)
	}
	tok := generic.(*HFTokenizer)
	hello, world := uint32(262+11), uint32(262+16)
	if got := tok.Encode("hello world"); !slices.Equal(got, []uint32{hello, world}) {
		t.Errorf("hello world: %v, want [%d %d]", got, hello, world)
	}
	// "hi " becomes h, <0x69> (no "i" in the vocabulary), ▁; then the
	// special token; then "x" as <0x78>.
	want := []uint32{262 + 1, 6 + 'i', 262, 4, 6 + 'x'}
	if got := tok.EncodeSpecial("hi <start_of_turn>x"); !slices.Equal(got, want) {
		t.Errorf("EncodeSpecial: %v, want %v", got, want)
	}
	if got := tok.Decode(append(tok.Encode("hello world"), 1)); got != "hello world<eos>" {
		t.Errorf("Decode: %q", got)
	}
	if tok.EOT() != 1 {
		t.Errorf("EOT %d, want <eos> = 1", tok.EOT())
	}
	if bos, ok := tok.BOS(); !ok || bos != 2 {
		t.Errorf("BOS %d %v, want <bos> = 2", bos, ok)
	}
}

// Issue 21 item 8: special-token text is a choice, tested each way: "text"
// encodes it as text, "map" as the special id, for an HF tokenizer and for
// GPT-2 and byte (whose one special is <|endoftext|>); the name stays.
func TestSpecialTokensEachWay(t *testing.T) {
	gemma, _ := NewTokenizer(gemma3Tokenizer(t))
	for _, c := range []struct {
		tok     Tokenizer
		text    string
		special uint32
	}{
		{gemma, "hello<end_of_turn>", 5},
		{mustTokenizer(t, "gpt2"), "Hi<|endoftext|>there", 50256},
		{mustTokenizer(t, "byte"), "ab<|endoftext|>c", 256},
	} {
		asText, err := WithSpecialTokens(c.tok, SpecialText)
		if err != nil {
			t.Fatal(err)
		}
		mapped, err := WithSpecialTokens(c.tok, SpecialMap)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(asText.Encode(c.text), c.special) {
			t.Errorf("%s text: %q encodes to the special id %d: %v", c.tok.Name(), c.text, c.special, asText.Encode(c.text))
		}
		got := mapped.Encode(c.text)
		if n := len(slices.DeleteFunc(slices.Clone(got), func(id uint32) bool { return id != c.special })); n != 1 {
			t.Errorf("%s map: %q encodes to %v, want the special id %d once", c.tok.Name(), c.text, got, c.special)
		}
		if mapped.Name() != c.tok.Name() || mapped.Decode(got) != c.tok.Decode(got) {
			t.Errorf("%s map: name %q", c.tok.Name(), mapped.Name())
		}
		back, _ := WithSpecialTokens(mapped, SpecialText)
		if !slices.Equal(back.Encode(c.text), asText.Encode(c.text)) {
			t.Errorf("%s: text after map does not encode as text", c.tok.Name())
		}
	}
	if _, err := WithSpecialTokens(gemma, "maybe"); err == nil {
		t.Error("special tokens mode maybe accepted")
	}
}

func TestSplitInvertMerged(t *testing.T) {
	var got []string
	for _, p := range splitPieces("a--b", splitParts(literalParts("a--b", "--", true), hfMergedWithPrevious), true, nil) {
		got = append(got, p.s)
	}
	if want := []string{"a", "--b"}; !slices.Equal(got, want) {
		t.Errorf("a--b on -- MergedWithPrevious inverted: %q, want %q", got, want)
	}
}
