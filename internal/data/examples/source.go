package examples

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
)

// Source serves examples as a stream: training cycles through
// epochs, each in its own deterministic order (from the seed and the epoch);
// evaluation reads the set once, in file order, the last batch padded.
type Source struct {
	ex      []Example
	B, T    int
	pad     int32
	seed    uint64
	shuffle bool
	once    bool  // evaluation: one pass in file order, then padding rows
	next    int64 // stream position of the next example
	perm    []int // order of epoch permEpoch
	permEp  int64
}

// Row says where one row of a JSONL set came from and its label
// (-1: none), for predictions.
type Row struct {
	File  string
	Line  int
	Label int32
}

// Rows lists the rows of the set in the order an evaluation reads them.
func (s *Source) Rows() []Row {
	rows := make([]Row, len(s.ex))
	for i, e := range s.ex {
		rows[i] = Row{File: e.file, Line: e.line, Label: e.label}
	}
	return rows
}

type sourceState struct {
	Next int64 `json:"next_example"`
}

// NewSource serves ex in micro-batches of B rows of T tokens, padded with
// pad: a training stream in an order from seed (shuffled or in file order),
// or with once an evaluation pass.
func NewSource(ex []Example, B, T int, pad int32, seed uint64, shuffle, once bool) *Source {
	return &Source{ex: ex, B: B, T: T, pad: pad, seed: seed, shuffle: shuffle && !once, once: once, permEp: -1}
}

func (s *Source) order(epoch int64) []int {
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
func (s *Source) Next() ([]int32, []int32, error) {
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

// Reset goes back to the start of the stream.
func (s *Source) Reset() { s.next = 0 }

// Close releases nothing: the examples are in memory.
func (s *Source) Close() error { return nil }

// EvalBatches is how many batches one evaluation pass reads, at most limit.
func (s *Source) EvalBatches(limit int) int {
	return min(limit, (len(s.ex)+s.B-1)/s.B)
}

// SaveState is the stream's position, for checkpoints.
func (s *Source) SaveState() (json.RawMessage, error) {
	return json.Marshal(sourceState{Next: s.next})
}

// RestoreState continues the stream from a position SaveState gave.
func (s *Source) RestoreState(raw json.RawMessage) error {
	var st sourceState
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("example loader state: %w", err)
	}
	if st.Next < 0 {
		return fmt.Errorf("example loader state: position %d", st.Next)
	}
	s.next = st.Next
	return nil
}
