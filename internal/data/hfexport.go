// This file writes a tokenizer as a HuggingFace tokenizer.json, so that a
// checkpoint carries its tokenizer and transformers' AutoTokenizer loads it
// beside the model: GPT-2 BPE as the GPT-2 file on the hub is laid out
// (ByteLevel pre-tokenizer and decoder, merges in rank order), the byte
// tokenizer as a byte-level BPE without merges, and a tokenizer.json as
// the file itself.

package data

import (
	"encoding/json"
	"fmt"
	"os"
)

// HFTokenizerJSON is tok as the content of a tokenizer.json.
func HFTokenizerJSON(tok Tokenizer) ([]byte, error) {
	if m, ok := tok.(mappingTokenizer); ok {
		tok = m.Tokenizer
	}
	switch t := tok.(type) {
	case *HFTokenizer:
		b, err := os.ReadFile(t.Path())
		if err != nil {
			return nil, fmt.Errorf("tokenizer %s: %w", t.Path(), err)
		}
		return b, nil
	case *gpt2Tokenizer:
		vocab := make(map[string]uint32, gpt2Vocab)
		for id, s := range t.dec {
			vocab[byteLevelString(s)] = uint32(id)
		}
		merges, err := gpt2Merges(t)
		if err != nil {
			return nil, err
		}
		return byteLevelJSON(vocab, merges, gpt2EOT, true)
	case byteTokenizer:
		vocab := make(map[string]uint32, 256)
		for b := range 256 {
			vocab[byteLevelChars[b]] = uint32(b)
		}
		return byteLevelJSON(vocab, [][2]string{}, 256, false)
	}
	return nil, fmt.Errorf("tokenizer %s cannot be written as a tokenizer.json", tok.Name())
}

// gpt2Merges recovers GPT-2's merges from its ranks, as transformers
// converts a tiktoken vocabulary: each token of two or more bytes is what
// BPE with the ranks below its own makes of its bytes, two parts, and the
// merges follow the tokens' ranks.
func gpt2Merges(t *gpt2Tokenizer) ([][2]string, error) {
	var merges [][2]string
	for id := 256; id < gpt2EOT; id++ {
		parts := bpeBelow(t.bpe.ranks, t.dec[id], uint32(id))
		if len(parts) != 2 {
			return nil, fmt.Errorf("tokenizer gpt2: token %d (%q) is not one merge of lower-ranked tokens", id, t.dec[id])
		}
		merges = append(merges, [2]string{byteLevelString(parts[0]), byteLevelString(parts[1])})
	}
	return merges, nil
}

// bpeBelow merges the bytes of s by ranks, using only ranks below max.
func bpeBelow(ranks map[string]uint32, s string, max uint32) []string {
	parts := make([]string, len(s))
	for i := 0; i < len(s); i++ { // bytes, not runes
		parts[i] = s[i : i+1]
	}
	for len(parts) > 1 {
		best, at := max, -1
		for i := 0; i+1 < len(parts); i++ {
			if r, ok := ranks[parts[i]+parts[i+1]]; ok && r < best {
				best, at = r, i
			}
		}
		if at < 0 {
			break
		}
		parts[at] += parts[at+1]
		parts = append(parts[:at+1], parts[at+2:]...)
	}
	return parts
}

// byteLevelJSON is a byte-level BPE tokenizer.json with EOTText as the
// special token eot; regex splits as GPT-2 does.
func byteLevelJSON(vocab map[string]uint32, merges [][2]string, eot uint32, regex bool) ([]byte, error) {
	vocab[EOTText] = eot
	byteLevel := func(prefix bool) map[string]any {
		return map[string]any{"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": true, "use_regex": regex}
	}
	j := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens": []map[string]any{{"id": eot, "content": EOTText, "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": true}},
		"normalizer":     nil,
		"pre_tokenizer":  byteLevel(false),
		"post_processor": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
		"decoder":        byteLevel(true),
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": merges},
	}
	return json.Marshal(j)
}
