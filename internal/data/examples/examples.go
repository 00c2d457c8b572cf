// Package examples holds the JSONL example sets of the fine-tuning tasks:
// completion rows ({"prompt","completion"}, the loss on the completion
// only) and classify rows ({"text","label"}, labels.go), read into memory
// (fine-tuning sets are small) and served as micro-batches by Source, one
// example per row padded to seq_len: rows never mix examples, so no
// example attends to another. Padding positions carry the end-of-text id as
// input and target -1.
package examples

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/model"
)

// Example is one row: inputs and targets of the same length <= T. A
// classify row also remembers where it came from and its label (-1: none),
// for predictions.
type Example struct {
	in, tg []int32
	file   string
	line   int
	label  int32
}

// Completion tokenizes {"prompt","completion"} lines: tokens =
// prompt + completion + EOT, truncated to T+1; the loss covers only the
// positions that predict completion tokens (and the closing EOT). Examples
// left without any such position by truncation are dropped and counted.
func Completion(paths []string, tok data.Tokenizer, T int) (ex []Example, dropped int, err error) {
	eot := int32(tok.EOT())
	err = readJSONL(paths, func(file string, line int, raw []byte) error {
		var r struct {
			Prompt     *string `json:"prompt"`
			Completion *string `json:"completion"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("%s:%d: %w", file, line, err)
		}
		if r.Prompt == nil || r.Completion == nil {
			return fmt.Errorf("%s:%d: want string fields \"prompt\" and \"completion\"", file, line)
		}
		var seq []int32
		for _, id := range tok.Encode(*r.Prompt) {
			seq = append(seq, int32(id))
		}
		np := len(seq)
		for _, id := range tok.Encode(*r.Completion) {
			seq = append(seq, int32(id))
		}
		seq = append(seq, eot)
		if len(seq) > T+1 {
			seq = seq[:T+1]
		}
		e := Example{in: seq[:len(seq)-1], tg: append([]int32(nil), seq[1:]...)}
		valid := 0
		for i := range e.tg {
			// position i predicts token i+1, a prompt token when i+1 < np
			if i+1 < np {
				e.tg[i] = -1
			} else {
				valid++
			}
		}
		if valid == 0 {
			dropped++
			return nil
		}
		ex = append(ex, e)
		return nil
	})
	return ex, dropped, err
}

// Classify tokenizes {"text","label"} lines, truncated to T tokens.
// The label sits at the last token's target; everything after it is
// padding (the EOT id, refused inside a text), which is
// exactly the row transformers' LlamaForSequenceClassification reads with
// pad_token_id = EOT. A label is an id or one of names (labels.go); with
// unlabelled, a row may have none (evaluation for predictions): its last
// token is still the one the head reads, but it adds nothing to the loss.
func Classify(paths []string, tok data.Tokenizer, T, numLabels int, names []string, unlabelled bool) ([]Example, error) {
	var ex []Example
	var kind labelKind
	err := readJSONL(paths, func(file string, line int, raw []byte) error {
		var r struct {
			Text  *string          `json:"text"`
			Label *json.RawMessage `json:"label"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("%s:%d: %w", file, line, err)
		}
		if r.Text == nil || (r.Label == nil && !unlabelled) {
			return fmt.Errorf("%s:%d: want fields \"text\" (string) and \"label\" (integer or string)", file, line)
		}
		label := int32(-1)
		if r.Label != nil {
			var err error
			if label, err = parseLabel(*r.Label, fmt.Sprintf("%s:%d", file, line), names, numLabels, &kind); err != nil {
				return err
			}
		}
		ids := tok.Encode(*r.Text)
		if len(ids) == 0 {
			return fmt.Errorf("%s:%d: empty text", file, line)
		}
		if slices.Contains(ids, tok.EOT()) {
			return fmt.Errorf("%s:%d: the text holds the end-of-text token %q, which pads a classifier's rows: set data.special_tokens: text to read it as text",
				file, line, tok.Decode([]uint32{tok.EOT()}))
		}
		if len(ids) > T {
			ids = ids[:T]
		}
		e := Example{in: make([]int32, len(ids)), tg: make([]int32, len(ids)), file: file, line: line, label: label}
		for i, id := range ids {
			e.in[i], e.tg[i] = int32(id), -1
		}
		e.tg[len(ids)-1] = label
		if label < 0 {
			e.tg[len(ids)-1] = model.ReadOnlyTarget
		}
		ex = append(ex, e)
		return nil
	})
	return ex, err
}

// Split holds out a deterministic fraction (at least one example)
// of ex for validation; the rest keep their order.
func Split(ex []Example, frac float64, seed uint64) (train, val []Example, err error) {
	nv := int(math.Round(frac * float64(len(ex))))
	nv = max(nv, 1)
	if nv >= len(ex) {
		return nil, nil, fmt.Errorf("finetune.val_fraction = %g leaves no training examples out of %d", frac, len(ex))
	}
	idx := rand.New(rand.NewPCG(seed, 0x7a11)).Perm(len(ex))[:nv]
	sort.Ints(idx)
	held := map[int]bool{}
	for _, i := range idx {
		held[i] = true
		val = append(val, ex[i])
	}
	for i, e := range ex {
		if !held[i] {
			train = append(train, e)
		}
	}
	return train, val, nil
}
