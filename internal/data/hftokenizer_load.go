// This file loads a tokenizer.json (the HFTokenizer of hftokenizer.go):
// reading the file, its model's vocabulary, the added tokens and the
// post-processor's BOS, and refusing what the encoder does not reproduce.
// Each component type is parsed in its own file (hftokenizer_model.go,
// _normalize.go, _pretokenize.go, _decode.go); parseHFComponent here reads
// the null and Sequence forms they share.

package data

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LoadHFTokenizer reads a HuggingFace tokenizer.json holding a BPE model. Its
// Encode follows the Tokenizer contract: special tokens written in the text
// are encoded as text (the library's encode_special_tokens=True); added tokens
// that are not special are still matched. EncodeSpecial matches special tokens
// too, as the library does by default. Neither adds BOS (the file's
// post-processor is not applied); BOS returns the id to prepend. EOT is the
// first of </s>, <|end_of_text|>, <|endoftext|>, <|eot_id|> (then <eos>,
// <|im_end|>) that the file defines; Decode renders it as its own text, not
// EOTText. Name is "hf-" and 16 hex digits of the file's SHA-256 (it names
// cache directories, so it holds no colon).
//
// The concrete type is *HFTokenizer.
func LoadHFTokenizer(path string) (tok Tokenizer, err error) {
	defer func() {
		if r := recover(); r != nil {
			tok, err = nil, fmt.Errorf("tokenizer %s: %v", path, r)
		}
	}()
	raw, err := ReadRegular(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	t, err := parseHFTokenizer(raw)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	sum := sha256.Sum256(raw)
	t.name = "hf-" + hex.EncodeToString(sum[:8])
	t.path = path
	return t, nil
}

// hfTokenizerPath reports whether name designates a tokenizer.json: a path
// ending in .json (tokenizer.json, or any other name, as the training config
// accepts), or a directory (which must then hold a tokenizer.json).
func hfTokenizerPath(name string) (path string, ok bool, err error) {
	if strings.HasSuffix(strings.ToLower(name), ".json") {
		return name, true, nil
	}
	fi, statErr := os.Stat(name)
	if statErr != nil || !fi.IsDir() {
		return "", false, nil
	}
	p := filepath.Join(name, HFTokenizerFile)
	if _, err := os.Stat(p); err != nil {
		return "", true, fmt.Errorf("tokenizer: directory %s has no %s", name, HFTokenizerFile)
	}
	return p, true, nil
}

type hfFileJSON struct {
	AddedTokens   []hfAddedJSON   `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

type hfAddedJSON struct {
	ID         *uint32 `json:"id"`
	Content    string  `json:"content"`
	SingleWord bool    `json:"single_word"`
	Lstrip     bool    `json:"lstrip"`
	Rstrip     bool    `json:"rstrip"`
	Normalized *bool   `json:"normalized"`
	Special    bool    `json:"special"`
}

type hfModelJSON struct {
	Type                    string            `json:"type"`
	Vocab                   map[string]uint32 `json:"vocab"`
	Merges                  []json.RawMessage `json:"merges"`
	UnkToken                *string           `json:"unk_token"`
	ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	FuseUnk                 bool              `json:"fuse_unk"`
	ByteFallback            bool              `json:"byte_fallback"`
	IgnoreMerges            bool              `json:"ignore_merges"`
}

// hfMaxID bounds token ids (real vocabularies: < 300k).
const hfMaxID = 1 << 24

// hfTyped reads the type of a component.
type hfTyped struct {
	Type string `json:"type"`
}

func isJSONNull(r json.RawMessage) bool {
	r = bytes.TrimSpace(r)
	return len(r) == 0 || string(r) == "null"
}

func parseHFTokenizer(raw []byte) (*HFTokenizer, error) {
	var f hfFileJSON
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("not a tokenizer.json: %w", err)
	}
	if isJSONNull(f.Model) {
		return nil, errors.New(`no "model"`)
	}
	var mt struct {
		Type   string          `json:"type"`
		Merges json.RawMessage `json:"merges"`
	}
	if err := json.Unmarshal(f.Model, &mt); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if mt.Type == "" && mt.Merges != nil {
		mt.Type = "BPE" // files written before "type" was stored
	}
	if mt.Type != "BPE" {
		return nil, fmt.Errorf("model type %q is not supported (only BPE)", mt.Type)
	}
	var m hfModelJSON
	if err := json.Unmarshal(f.Model, &m); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if len(m.Vocab) == 0 {
		return nil, errors.New("model has no vocab")
	}
	t := &HFTokenizer{
		vocab:        m.Vocab,
		byteFallback: m.ByteFallback,
		fuseUnk:      m.FuseUnk,
		ignoreMerges: m.IgnoreMerges,
	}
	if m.ContinuingSubwordPrefix != nil {
		t.prefix = *m.ContinuingSubwordPrefix
	}
	if m.EndOfWordSuffix != nil {
		t.suffix = *m.EndOfWordSuffix
	}
	if m.UnkToken != nil {
		id, ok := m.Vocab[*m.UnkToken]
		if !ok {
			return nil, fmt.Errorf("unk_token %q is not in the vocabulary", *m.UnkToken)
		}
		t.hasUnk, t.unkID = true, id
	}
	for b := range 256 {
		t.byteIDs[b] = -1
		if id, ok := m.Vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			t.byteIDs[b] = int64(id)
		}
	}
	if err := t.parseMerges(m.Merges); err != nil {
		return nil, err
	}

	maxID := uint32(0)
	for _, id := range m.Vocab {
		maxID = max(maxID, id)
	}
	// Added tokens keep the model's id when the model has the token (as the
	// library assigns them), else the id in the file.
	seen := map[string]bool{}
	for i, a := range f.AddedTokens {
		if a.Content == "" || seen[a.Content] {
			continue
		}
		seen[a.Content] = true
		id, ok := m.Vocab[a.Content]
		if !ok {
			if a.ID == nil {
				return nil, fmt.Errorf("added token %d (%q) has no id", i, a.Content)
			}
			id = *a.ID
		}
		normalized := !a.Special
		if a.Normalized != nil {
			normalized = *a.Normalized
		}
		t.added = append(t.added, hfAdded{id: id, content: a.Content, special: a.Special, lstrip: a.Lstrip,
			rstrip: a.Rstrip, singleWord: a.SingleWord, normalize: normalized})
		maxID = max(maxID, id)
	}
	if maxID >= hfMaxID {
		return nil, fmt.Errorf("token id %d is too large (limit %d)", maxID, hfMaxID-1)
	}
	t.vocabSize = int(maxID) + 1
	t.idToTok = make([]string, t.vocabSize)
	t.hasTok = make([]bool, t.vocabSize)
	for s, id := range m.Vocab {
		t.idToTok[id], t.hasTok[id] = s, true
	}

	var err error
	if t.normalizer, err = parseHFNormalizer(f.Normalizer); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	// An added token decodes to its text, normalized if it is matched on
	// normalized text (as the library decodes it: LLaMA-2's normalizer makes
	// a normalized "<tool>" decode as " <tool>").
	for _, a := range t.added {
		t.idToTok[a.id], t.hasTok[a.id] = t.addedPattern(a), true
	}
	if t.preTok, err = parseHFPreTokenizer(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	if !isJSONNull(f.Decoder) {
		t.hasDecoder = true
		if t.decoder, err = parseHFDecoder(f.Decoder); err != nil {
			return nil, fmt.Errorf("decoder: %w", err)
		}
	}

	// Special tokens first, then the others, as the library orders them;
	// tokens matched on normalized text are normalized themselves.
	t.rawMatch, t.normMatch = newHFMatcher(), newHFMatcher()
	for _, special := range []bool{true, false} {
		for k, a := range t.added {
			if a.special != special {
				continue
			}
			if a.normalize {
				t.normMatch.add(t.addedPattern(a), k)
			} else {
				t.rawMatch.add(a.content, k)
			}
		}
	}

	eot, ok := uint32(0), false
	for _, name := range hfEOTNames {
		if eot, ok = t.TokenID(name); ok {
			break
		}
	}
	if !ok {
		return nil, fmt.Errorf("no end-of-text token (none of %s)", strings.Join(hfEOTNames, " "))
	}
	t.eot = eot
	if t.bos, t.hasBOS, err = t.parseBOS(f.PostProcessor); err != nil {
		return nil, fmt.Errorf("post_processor: %w", err)
	}
	if !t.hasBOS {
		for _, name := range hfBOSNames {
			for _, a := range t.added {
				if a.special && a.content == name {
					t.bos, t.hasBOS = a.id, true
					break
				}
			}
			if t.hasBOS {
				break
			}
		}
	}
	return t, nil
}

// addedPattern is the text an added token is matched as: its content,
// normalized when the token is matched on normalized text.
func (t *HFTokenizer) addedPattern(a hfAdded) string {
	p := a.content
	if a.normalize {
		for _, n := range t.normalizer {
			p = n.normalize(p)
		}
	}
	return p
}

// parseBOS finds the token a TemplateProcessing (also inside a Sequence),
// RobertaProcessing or BertProcessing puts before a single sequence.
func (t *HFTokenizer) parseBOS(raw json.RawMessage) (uint32, bool, error) {
	if isJSONNull(raw) {
		return 0, false, nil
	}
	var p struct {
		Type       string            `json:"type"`
		Processors []json.RawMessage `json:"processors"`
		Single     []struct {
			SpecialToken *struct {
				ID string `json:"id"`
			} `json:"SpecialToken"`
			Sequence json.RawMessage `json:"Sequence"`
		} `json:"single"`
		SpecialTokens map[string]struct {
			IDs []uint32 `json:"ids"`
		} `json:"special_tokens"`
		Cls []json.RawMessage `json:"cls"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return 0, false, err
	}
	switch p.Type {
	case "Sequence":
		for _, r := range p.Processors {
			if id, ok, err := t.parseBOS(r); err != nil || ok {
				return id, ok, err
			}
		}
	case "TemplateProcessing":
		var lead []string
		for _, piece := range p.Single {
			if piece.SpecialToken == nil {
				break
			}
			lead = append(lead, piece.SpecialToken.ID)
		}
		if len(lead) == 1 {
			if st, ok := p.SpecialTokens[lead[0]]; ok && len(st.IDs) == 1 {
				return st.IDs[0], true, nil
			}
		}
	case "RobertaProcessing", "BertProcessing":
		if len(p.Cls) == 2 {
			var id uint32
			if err := json.Unmarshal(p.Cls[1], &id); err == nil {
				return id, true, nil
			}
		}
	}
	return 0, false, nil
}

// hfPattern reads {"String": s} or {"Regex": r}.
func hfPattern(raw json.RawMessage) (literal string, regex string, isRegex bool, err error) {
	var p struct {
		String *string `json:"String"`
		Regex  *string `json:"Regex"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", "", false, fmt.Errorf("pattern: %w", err)
	}
	switch {
	case p.String != nil:
		return *p.String, "", false, nil
	case p.Regex != nil:
		return "", *p.Regex, true, nil
	}
	return "", "", false, fmt.Errorf("pattern %s is neither String nor Regex", raw)
}

// parseHFComponent reads a normalizer, pre-tokenizer or decoder: null is
// none, a Sequence is its members (listed under field) read in turn and
// flattened, and any other type is parseType's, which refuses what it does
// not know.
func parseHFComponent[T any](raw json.RawMessage, field string, parseType func(typ string, raw json.RawMessage) ([]T, error)) ([]T, error) {
	if isJSONNull(raw) {
		return nil, nil
	}
	var ty hfTyped
	if err := json.Unmarshal(raw, &ty); err != nil {
		return nil, err
	}
	if ty.Type != "Sequence" {
		return parseType(ty.Type, raw)
	}
	var s map[string]json.RawMessage
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	if s[field] == nil {
		return nil, nil
	}
	var members []json.RawMessage
	if err := json.Unmarshal(s[field], &members); err != nil {
		return nil, fmt.Errorf("%s Sequence: %w", field, err)
	}
	var out []T
	for _, r := range members {
		v, err := parseHFComponent(r, field, parseType)
		if err != nil {
			return nil, err
		}
		out = append(out, v...)
	}
	return out, nil
}
