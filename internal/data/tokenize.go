// This file holds the tokenize pipeline behind `compact tokenize`: it reads
// text files (one document each) and JSONL files (one document per line),
// tokenizes documents in parallel, appends the end-of-text token to each,
// splits them deterministically into train and validation, and writes
// llm.c shards of at most ShardTokens tokens.

package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// Input formats for TokenizeOptions.Format.
const (
	InputAuto  = "auto"  // by extension: .jsonl/.ndjson (optionally .gz) are JSONL, the rest text
	InputText  = "text"  // each file is one document
	InputJSONL = "jsonl" // each non-blank line is a JSON object holding one document
)

// InputFormats lists the valid TokenizeOptions.Format values.
var InputFormats = []string{InputAuto, InputText, InputJSONL}

// DefaultShardTokens is the default shard size of TokenizeFiles (as llm.c).
const DefaultShardTokens = 100_000_000

// TokenizeOptions configures TokenizeFiles.
type TokenizeOptions struct {
	Inputs    []string  // input files, in order (expand globs with ExpandGlobs first)
	Format    string    // InputAuto (default), InputText or InputJSONL; files ending .gz are gunzipped
	Field     string    // JSONL field holding the document text; default "text"
	Tokenizer Tokenizer // required
	OutDir    string    // required; created if missing
	Prefix    string    // shard names are PREFIX_train_000000.bin; empty gives train_000000.bin

	// ValFraction in [0, 0.5] sends every k-th document (k = round(1/ValFraction))
	// to validation; with ValFraction > 0 and at least two documents, at least
	// one goes to validation. ValEvery > 0 sets k directly instead.
	ValFraction float64
	ValEvery    int

	ShardTokens int // tokens per shard before starting the next; default DefaultShardTokens
	Workers     int // tokenizing goroutines; default GOMAXPROCS

	// Progress, if set, is called from one goroutine after every document.
	Progress func(TokenizeProgress)
}

// TokenizeProgress is passed to TokenizeOptions.Progress.
type TokenizeProgress struct {
	Documents int   // documents written so far
	Bytes     int64 // bytes of document text tokenized so far
	Tokens    int64 // tokens written so far (EOTs included)
}

// TokenizeResult reports what TokenizeFiles wrote.
type TokenizeResult struct {
	Documents      int      // non-empty documents tokenized
	Skipped        int      // empty documents and blank JSONL lines skipped
	TrainDocuments int      //
	ValDocuments   int      //
	Bytes          int64    // bytes of document text
	TrainTokens    int64    // EOTs included
	ValTokens      int64    //
	TrainShards    []string // paths, in order
	ValShards      []string // paths, in order; empty when nothing went to validation
}

// ShardName returns the file name of shard index of split ("train" or "val").
func ShardName(prefix, split string, index int) string {
	if prefix == "" {
		return fmt.Sprintf("%s_%06d.bin", split, index)
	}
	return fmt.Sprintf("%s_%s_%06d.bin", prefix, split, index)
}

// TokenizeFiles tokenizes opts.Inputs into shards in opts.OutDir. The output
// depends only on the inputs and options, never on scheduling. On failure the
// shards this call wrote are removed.
func TokenizeFiles(opts TokenizeOptions) (TokenizeResult, error) {
	if len(opts.Inputs) == 0 {
		return TokenizeResult{}, errors.New("tokenize: no input files")
	}
	format := opts.Format
	if format != "" && !slices.Contains(InputFormats, format) {
		return TokenizeResult{}, fmt.Errorf("tokenize: unknown input format %q (valid: %s)", format, strings.Join(InputFormats, ", "))
	}
	field := opts.Field
	if field == "" {
		field = "text"
	}
	for _, in := range opts.Inputs {
		st, err := os.Stat(in)
		if err != nil {
			return TokenizeResult{}, fmt.Errorf("tokenize: input %s: %w", in, err)
		}
		if st.IsDir() {
			return TokenizeResult{}, fmt.Errorf("tokenize: input %s is a directory; pass files or a glob such as %s", in, filepath.Join(in, "*.txt"))
		}
	}
	produce := func(ctx context.Context, emit func(text string) error, skip func()) error {
		for _, in := range opts.Inputs {
			isJSONL := format == InputJSONL
			if format == "" || format == InputAuto {
				ext := strings.ToLower(filepath.Ext(strings.TrimSuffix(in, ".gz")))
				isJSONL = ext == ".jsonl" || ext == ".ndjson"
			}
			if err := readInput(ctx, in, isJSONL, field, emit, skip); err != nil {
				return err
			}
		}
		return nil
	}
	return tokenizeDocs(opts, produce)
}

// readInput emits the documents of one input file.
func readInput(ctx context.Context, path string, isJSONL bool, field string, emit func(string) error, skip func()) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("input %s: %w", path, err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("input %s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	if !isJSONL {
		b, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("input %s: %w", path, err)
		}
		if len(b) == 0 {
			skip()
			return nil
		}
		return emit(string(b))
	}
	br := bufio.NewReaderSize(r, 1<<20)
	for line := 1; ; line++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, rerr := br.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return fmt.Errorf("jsonl %s:%d: %w", path, line, rerr)
		}
		if len(bytes.TrimSpace(b)) == 0 {
			if len(b) > 0 {
				skip()
			}
		} else {
			text, err := jsonlText(b, field)
			if err != nil {
				return fmt.Errorf("jsonl %s:%d: %w", path, line, err)
			}
			if text == "" {
				skip()
			} else if err := emit(text); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
	}
}

// jsonlText extracts field from one JSONL line.
func jsonlText(line []byte, field string) (string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		return "", fmt.Errorf("malformed JSON line: %w", err)
	}
	raw, ok := obj[field]
	if !ok {
		return "", fmt.Errorf("field %q missing", field)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("field %q is not a string", field)
	}
	return s, nil
}

// splitWriter writes one split ("train" or "val") as a series of shards.
type splitWriter struct {
	dir, prefix, split string
	shardTokens        int
	wide               bool
	tok                string // tokenizer name recorded in each shard's header
	cur                *ShardWriter
	paths              []string // finalized shards
	tokens             int64
}

func (s *splitWriter) write(ids []uint32) error {
	for len(ids) > 0 {
		if s.cur == nil {
			w, err := CreateShard(filepath.Join(s.dir, ShardName(s.prefix, s.split, len(s.paths))), s.wide)
			if err != nil {
				return err
			}
			if s.tok != "" {
				if err := w.SetTokenizer(s.tok); err != nil {
					w.Abort()
					return err
				}
			}
			s.cur = w
		}
		n := min(len(ids), s.shardTokens-int(s.cur.Len()))
		if err := s.cur.Write(ids[:n]); err != nil {
			return err
		}
		s.tokens += int64(n)
		ids = ids[n:]
		if int(s.cur.Len()) == s.shardTokens {
			if err := s.finish(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *splitWriter) finish() error {
	if s.cur == nil {
		return nil
	}
	w := s.cur
	s.cur = nil
	if err := w.Close(); err != nil {
		return err
	}
	s.paths = append(s.paths, w.Path())
	return nil
}

// abort discards the partial shard and removes the finished ones.
func (s *splitWriter) abort() {
	if s.cur != nil {
		s.cur.Abort()
		s.cur = nil
	}
	for _, p := range s.paths {
		os.Remove(p)
	}
	s.paths = nil
}

// docProducer emits documents in order; skip counts an empty document.
type docProducer func(ctx context.Context, emit func(text string) error, skip func()) error

// tokenizeDocs runs the parallel, order-preserving tokenize pipeline: one
// goroutine reads documents, Workers goroutines encode them, and the calling
// goroutine writes results in document order.
func tokenizeDocs(opts TokenizeOptions, produce docProducer) (res TokenizeResult, err error) {
	tok := opts.Tokenizer
	if tok == nil {
		return res, errors.New("tokenize: no tokenizer")
	}
	if opts.OutDir == "" {
		return res, errors.New("tokenize: no output directory")
	}
	if opts.ValFraction < 0 || opts.ValFraction > 0.5 || math.IsNaN(opts.ValFraction) {
		return res, fmt.Errorf("tokenize: validation fraction %v is outside [0, 0.5]", opts.ValFraction)
	}
	valEvery := opts.ValEvery
	if valEvery <= 0 && opts.ValFraction > 0 {
		valEvery = max(2, int(math.Round(1/opts.ValFraction)))
	}
	// The prefix becomes part of a file name inside OutDir; a separator or
	// ".." would write outside it.
	if strings.ContainsAny(opts.Prefix, `/\`) || strings.Contains(opts.Prefix, "..") || strings.ContainsRune(opts.Prefix, os.PathSeparator) {
		return res, fmt.Errorf("tokenize: prefix %q: must be a plain name (no path separator or ..), shards are written inside %s", opts.Prefix, opts.OutDir)
	}
	shardTokens := opts.ShardTokens
	if shardTokens <= 0 {
		shardTokens = DefaultShardTokens
	}
	if shardTokens > math.MaxInt32 {
		return res, fmt.Errorf("tokenize: shard size %d tokens exceeds the llm.c limit %d", shardTokens, math.MaxInt32)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return res, fmt.Errorf("tokenize: output directory %s: %w", opts.OutDir, err)
	}
	wide := tok.VocabSize() > math.MaxUint16+1
	train := &splitWriter{dir: opts.OutDir, prefix: opts.Prefix, split: "train", shardTokens: shardTokens, wide: wide, tok: tok.Name()}
	val := &splitWriter{dir: opts.OutDir, prefix: opts.Prefix, split: "val", shardTokens: shardTokens, wide: wide, tok: tok.Name()}
	defer func() {
		if err != nil {
			train.abort()
			val.abort()
		}
	}()

	type slot struct {
		out   chan []uint32
		bytes int
		skip  bool
		err   error
	}
	type job struct {
		text string
		out  chan []uint32
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	order := make(chan slot, 8*workers)
	jobs := make(chan job, 8*workers)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel (deferred later, runs first)
	defer cancel()

	wg.Add(1)
	go func() { // reader
		defer wg.Done()
		defer close(order)
		defer close(jobs)
		send := func(s slot) error {
			select {
			case order <- s:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		emit := func(text string) error {
			out := make(chan []uint32, 1)
			if err := send(slot{out: out, bytes: len(text)}); err != nil {
				return err
			}
			select {
			case jobs <- job{text: text, out: out}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		skip := func() { send(slot{skip: true}) }
		if err := produce(ctx, emit, skip); err != nil && ctx.Err() == nil {
			send(slot{err: err})
		}
	}()
	eot := tok.EOT()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				j.out <- append(tok.Encode(j.text), eot)
			}
		}()
	}

	// Collector: documents arrive in order. The newest train document is held
	// back so that, if the input ends before any document reached
	// validation, it can go there instead.
	var pending []uint32
	hasPending := false
	for s := range order {
		if s.err != nil {
			return res, s.err
		}
		if s.skip {
			res.Skipped++
			continue
		}
		ids := <-s.out
		i := res.Documents
		res.Documents++
		res.Bytes += int64(s.bytes)
		if valEvery > 0 && i%valEvery == valEvery-1 {
			if err := val.write(ids); err != nil {
				return res, err
			}
			res.ValDocuments++
		} else {
			if hasPending {
				if err := train.write(pending); err != nil {
					return res, err
				}
				res.TrainDocuments++
			}
			pending, hasPending = ids, true
		}
		if opts.Progress != nil {
			opts.Progress(TokenizeProgress{Documents: res.Documents, Bytes: res.Bytes, Tokens: train.tokens + val.tokens + int64(len(pending))})
		}
	}
	if res.Documents == 0 {
		return res, errors.New("tokenize: inputs hold no documents (all empty)")
	}
	if hasPending {
		if valEvery > 0 && res.ValDocuments == 0 && res.Documents >= 2 {
			err = val.write(pending)
			res.ValDocuments++
		} else {
			err = train.write(pending)
			res.TrainDocuments++
		}
		if err != nil {
			return res, err
		}
	}
	if err := train.finish(); err != nil {
		return res, err
	}
	if err := val.finish(); err != nil {
		return res, err
	}
	res.TrainTokens, res.ValTokens = train.tokens, val.tokens
	res.TrainShards, res.ValShards = train.paths, val.paths
	return res, nil
}
