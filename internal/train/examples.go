package train

// Batches for training and evaluation. Causal runs stream token shards
// through data.Loader; the JSONL fine-tuning tasks hold their examples in
// memory (fine-tuning sets are small) and give one example per row, padded
// to seq_len: rows never mix examples, so no example attends to another.
// Padding positions carry the end-of-text id as input and target -1.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/model"
)

// Batches yields micro-batches of inputs and targets (B*T, row-major;
// target -1 is ignored) and can say where it stands for checkpoints.
type Batches interface {
	Next() (inputs, targets []int32, err error)
	Reset()
	Close() error
	// EvalBatches is how many batches one evaluation reads given the
	// train.eval_batches cap.
	EvalBatches(limit int) int
	saveState() (json.RawMessage, error)
	restoreState(json.RawMessage) error
}

// shardSource adapts data.Loader of micro-batch b.
type shardSource struct {
	*data.Loader
	b int
}

// EvalBatches caps limit at the batches one epoch of the set fills: any
// further batch would only evaluate the same windows again (a one-window
// shard evaluated 1000 times).
func (s shardSource) EvalBatches(limit int) int {
	fill := (s.SamplesPerEpoch() + int64(s.b) - 1) / int64(s.b)
	return int(min(int64(limit), max(fill, 1)))
}

func (s shardSource) saveState() (json.RawMessage, error) { return json.Marshal(s.State()) }

func (s shardSource) restoreState(raw json.RawMessage) error {
	var ls data.LoaderState
	if err := json.Unmarshal(raw, &ls); err != nil {
		return fmt.Errorf("loader state: %w", err)
	}
	return s.Restore(ls)
}

// example is one row: inputs and targets of the same length <= T. A
// classify row also remembers where it came from and its label (-1: none),
// for predictions.
type example struct {
	in, tg []int32
	file   string
	line   int
	label  int32
}

// exampleSource serves examples as a stream: training cycles through
// epochs, each in its own deterministic order (from the seed and the epoch);
// evaluation reads the set once, in file order, the last batch padded.
type exampleSource struct {
	ex      []example
	B, T    int
	pad     int32
	seed    uint64
	shuffle bool
	once    bool  // evaluation: one pass in file order, then padding rows
	next    int64 // stream position of the next example
	perm    []int // order of epoch permEpoch
	permEp  int64
}

// ExampleRow says where one row of a JSONL set came from and its label
// (-1: none), for predictions.
type ExampleRow struct {
	File  string
	Line  int
	Label int32
}

// ExampleRows lists the rows of a JSONL set in the order an evaluation
// reads them; nil for token shards.
func ExampleRows(b Batches) []ExampleRow {
	s, ok := b.(*exampleSource)
	if !ok {
		return nil
	}
	rows := make([]ExampleRow, len(s.ex))
	for i, e := range s.ex {
		rows[i] = ExampleRow{File: e.file, Line: e.line, Label: e.label}
	}
	return rows
}

type exampleState struct {
	Next int64 `json:"next_example"`
}

func newExampleSource(ex []example, B, T int, pad int32, seed uint64, shuffle, once bool) *exampleSource {
	return &exampleSource{ex: ex, B: B, T: T, pad: pad, seed: seed, shuffle: shuffle && !once, once: once, permEp: -1}
}

func (s *exampleSource) order(epoch int64) []int {
	if s.permEp != epoch {
		n := len(s.ex)
		if s.shuffle {
			s.perm = rand.New(rand.NewPCG(s.seed, uint64(epoch)+0x5eed)).Perm(n)
		} else {
			s.perm = make([]int, n)
			for i := range s.perm {
				s.perm[i] = i
			}
		}
		s.permEp = epoch
	}
	return s.perm
}

// Next fills B rows. Training streams wrap into the next epoch; in an
// evaluation pass rows past the end of the set are all padding.
func (s *exampleSource) Next() ([]int32, []int32, error) {
	B, T, n := s.B, s.T, int64(len(s.ex))
	in, tg := make([]int32, B*T), make([]int32, B*T)
	for i := range in {
		in[i], tg[i] = s.pad, -1
	}
	for b := 0; b < B; b++ {
		k := s.next
		s.next++
		if s.once && k >= n {
			continue
		}
		e := s.ex[s.order(k / n)[k%n]]
		copy(in[b*T:], e.in)
		copy(tg[b*T:], e.tg)
	}
	return in, tg, nil
}

func (s *exampleSource) Reset()       { s.next = 0 }
func (s *exampleSource) Close() error { return nil }

func (s *exampleSource) EvalBatches(limit int) int {
	return min(limit, (len(s.ex)+s.B-1)/s.B)
}

func (s *exampleSource) saveState() (json.RawMessage, error) {
	return json.Marshal(exampleState{Next: s.next})
}

func (s *exampleSource) restoreState(raw json.RawMessage) error {
	var st exampleState
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("example loader state: %w", err)
	}
	if st.Next < 0 {
		return fmt.Errorf("example loader state: position %d", st.Next)
	}
	s.next = st.Next
	return nil
}

// maxJSONLLine is the longest JSONL row read (one example).
const maxJSONLLine = 64 << 20

// readJSONL calls fn with every non-blank line of every file; errors name
// the file and line. A leading byte order mark is dropped; FIFOs and
// devices are refused (they would block or never end).
func readJSONL(paths []string, fn func(file string, line int, raw []byte) error) error {
	for _, p := range paths {
		f, _, err := data.OpenRegular(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		err = scanJSONL(f, p, fn)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// scanJSONL is readJSONL of one open file.
func scanJSONL(r io.Reader, file string, fn func(file string, line int, raw []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), maxJSONLLine)
	line := 0
	for sc.Scan() {
		line++
		raw := sc.Bytes()
		if line == 1 {
			raw = data.TrimBOM(raw)
		}
		if raw = bytes.TrimSpace(raw); len(raw) == 0 {
			continue
		}
		if err := fn(file, line, raw); err != nil {
			return err
		}
	}
	switch err := sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		return fmt.Errorf("%s:%d: the line is longer than %d MiB, the most one example may take (is this a JSONL file, one JSON object per line?)",
			file, line+1, maxJSONLLine>>20)
	case err != nil:
		return fmt.Errorf("%s:%d: %w", file, line+1, err)
	}
	return nil
}

// completionExamples tokenizes {"prompt","completion"} lines: tokens =
// prompt + completion + EOT, truncated to T+1; the loss covers only the
// positions that predict completion tokens (and the closing EOT). Examples
// left without any such position by truncation are dropped and counted.
func completionExamples(paths []string, tok data.Tokenizer, T int) (ex []example, dropped int, err error) {
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
		e := example{in: seq[:len(seq)-1], tg: append([]int32(nil), seq[1:]...)}
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

// classifyExamples tokenizes {"text","label"} lines, truncated to T tokens.
// The label sits at the last token's target; everything after it is
// padding (the EOT id, refused inside a text), which is
// exactly the row transformers' LlamaForSequenceClassification reads with
// pad_token_id = EOT. A label is an id or one of names (labels.go); with
// unlabelled, a row may have none (evaluation for predictions): its last
// token is still the one the head reads, but it adds nothing to the loss.
func classifyExamples(paths []string, tok data.Tokenizer, T, numLabels int, names []string, unlabelled bool) ([]example, error) {
	var ex []example
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
		e := example{in: make([]int32, len(ids)), tg: make([]int32, len(ids)), file: file, line: line, label: label}
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

// splitExamples holds out a deterministic fraction (at least one example)
// of ex for validation; the rest keep their order.
func splitExamples(ex []example, frac float64, seed uint64) (train, val []example, err error) {
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
