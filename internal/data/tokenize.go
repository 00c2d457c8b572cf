// This file holds the tokenize pipeline behind `compact tokenize`: it reads
// the inputs (tokenize_inputs.go), tokenizes documents on every core,
// appends the end-of-text token to each, splits them deterministically into
// train and validation (tokenize_split.go) and writes llm.c shards of at
// most ShardTokens tokens, then installs them with a manifest
// (tokenize_manifest.go).

package data

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultShardTokens is the default shard size of TokenizeFiles (as llm.c).
const DefaultShardTokens = 100_000_000

// TokenizeOptions configures TokenizeFiles.
type TokenizeOptions struct {
	Inputs    []string  // input files, in order (expand globs with ExpandGlobs first)
	Format    string    // one of InputFormats; InputAuto (default) goes by extension
	Field     string    // JSONL field or Parquet column holding the document text; default "text"
	Tokenizer Tokenizer // required
	// SpecialTokens is SpecialMap or SpecialText (WithSpecialTokens); empty
	// keeps the Tokenizer's Encode, which reads special-token text as text.
	SpecialTokens string
	OutDir        string // required; created if missing
	Prefix        string // shard names are PREFIX_train_000000.bin; empty gives train_000000.bin

	// ValFraction in [0, 0.5] is the fraction of tokens for validation,
	// split at document boundaries where possible (tokenize_split.go).
	// ValEvery > 0 sends every k-th document to validation instead.
	ValFraction float64
	ValEvery    int

	ShardTokens int // tokens per shard before starting the next; default DefaultShardTokens
	Workers     int // tokenizing goroutines; default GOMAXPROCS

	// Overwrite replaces shards of Prefix already in OutDir; without it
	// they are an error (a glob such as train_*.bin would read old and new).
	Overwrite bool

	// Progress, if set, is called from one goroutine after every document.
	Progress func(TokenizeProgress)
}

// TokenizeProgress is passed to TokenizeOptions.Progress.
type TokenizeProgress struct {
	Documents  int   // documents written so far
	Bytes      int64 // bytes of document text tokenized so far
	InputBytes int64 // bytes read from the input files so far (compressed, as on disk)
	Tokens     int64 // tokens written so far (EOTs included)
}

// TokenizeResult reports what TokenizeFiles wrote.
type TokenizeResult struct {
	Documents      int      // non-empty documents tokenized
	Skipped        int      // empty documents and blank JSONL lines skipped
	TrainDocuments int      // documents with tokens in train
	ValDocuments   int      // documents with tokens in validation (a cut one counts in both)
	Bytes          int64    // bytes of document text
	TrainTokens    int64    // EOTs included
	ValTokens      int64    //
	TrainShards    []string // paths, in order
	ValShards      []string // paths, in order; empty when nothing went to validation
	ValCut         *ValCut  // the document split between train and validation, if any
	Manifest       string   // the sidecar JSON describing the shards and their sources
	Replaced       []string // shards of an earlier run that Overwrite removed
	Workers        int
	Seconds        float64
}

// ShardName returns the file name of shard index of split ("train" or "val").
func ShardName(prefix, split string, index int) string {
	if prefix == "" {
		return fmt.Sprintf("%s_%06d.bin", split, index)
	}
	return fmt.Sprintf("%s_%s_%06d.bin", prefix, split, index)
}

// TokenizeFiles tokenizes opts.Inputs into shards in opts.OutDir. The output
// depends only on the inputs and options, never on scheduling. Shards are
// written to a staging directory inside OutDir and moved into place only
// when all are complete: on failure OutDir is as it was.
func TokenizeFiles(opts TokenizeOptions) (res TokenizeResult, err error) {
	start := time.Now()
	if len(opts.Inputs) == 0 {
		return res, errors.New("tokenize: no input files")
	}
	format := opts.Format
	if format != "" && !slices.Contains(InputFormats, format) {
		return res, fmt.Errorf("tokenize: unknown input format %q (valid: %s)", format, strings.Join(InputFormats, ", "))
	}
	if opts.SpecialTokens != "" && opts.Tokenizer != nil {
		if opts.Tokenizer, err = WithSpecialTokens(opts.Tokenizer, opts.SpecialTokens); err != nil {
			return res, fmt.Errorf("tokenize: %w", err)
		}
	}
	ir := inputReader{field: opts.Field, read: new(atomic.Int64), chunk: textChunker(opts.Tokenizer)}
	if ir.field == "" {
		ir.field = "text"
	}
	sources := make([]Source, len(opts.Inputs))
	for i, in := range opts.Inputs {
		st, err := os.Stat(in)
		if err != nil {
			return res, fmt.Errorf("tokenize: input %s: %w", in, err)
		}
		if st.IsDir() {
			return res, fmt.Errorf("tokenize: input %s is a directory; pass files or a glob such as %s", in, filepath.Join(in, "*.txt"))
		}
		if !st.Mode().IsRegular() {
			return res, fmt.Errorf("tokenize: input %s is not a regular file", in)
		}
		abs, _ := filepath.Abs(in)
		sources[i] = Source{Path: abs, Bytes: st.Size(), Format: inputFormat(in, format), Compression: strings.TrimPrefix(compression(in), ".")}
	}
	if err := checkTokenizeOut(opts); err != nil {
		return res, err
	}
	old, err := existingShards(opts.OutDir, opts.Prefix)
	if err != nil {
		return res, err
	}
	if len(old) > 0 && !opts.Overwrite {
		return res, &StaleShardsError{Dir: opts.OutDir, Prefix: opts.Prefix, Files: old}
	}
	stage, err := os.MkdirTemp(opts.OutDir, ".tokenize-tmp-")
	if err != nil {
		return res, fmt.Errorf("tokenize: output directory %s: %w", opts.OutDir, err)
	}
	defer os.RemoveAll(stage) // empty after a successful install
	staged := opts
	staged.OutDir = stage
	produce := func(ctx context.Context, emit func(document) error, skip func()) error {
		for i, in := range opts.Inputs {
			if err := ir.readInput(ctx, in, sources[i].Format, i, emit, skip); err != nil {
				return err
			}
		}
		return nil
	}
	res, err = tokenizeDocs(staged, produce, ir.read)
	if err != nil {
		return res, err
	}
	if res.ValCut != nil {
		res.ValCut.Source = opts.Inputs[res.ValCut.source]
	}
	res.Seconds = time.Since(start).Seconds()
	if err := installShards(opts, &res, old, sources); err != nil {
		return res, err
	}
	return res, nil
}

// checkTokenizeOut refuses an output that is not a directory and a prefix
// that would leave it, and creates the directory.
func checkTokenizeOut(opts TokenizeOptions) error {
	if opts.OutDir == "" {
		return errors.New("tokenize: no output directory")
	}
	// The prefix becomes part of a file name inside OutDir; a separator or
	// ".." would write outside it.
	if strings.ContainsAny(opts.Prefix, `/\`) || strings.Contains(opts.Prefix, "..") || strings.ContainsRune(opts.Prefix, os.PathSeparator) {
		return fmt.Errorf("tokenize: prefix %q: must be a plain name (no path separator or ..), shards are written inside %s", opts.Prefix, opts.OutDir)
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return fmt.Errorf("tokenize: output directory %s: %w", opts.OutDir, err)
	}
	return nil
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
type docProducer func(ctx context.Context, emit func(document) error, skip func()) error

// encoded is a worker's answer for one document.
type encoded struct {
	ids   []uint32
	bytes int
	skip  bool // the document's text is empty
	more  bool // a piece of a document whose next piece follows
	err   error
}

// tokenizeDocs runs the parallel, order-preserving tokenize pipeline: one
// goroutine reads documents, Workers goroutines decode (JSONL) and encode
// them, and the calling goroutine writes results in document order. read,
// if set, counts the bytes read from the inputs.
func tokenizeDocs(opts TokenizeOptions, produce docProducer, read *atomic.Int64) (res TokenizeResult, err error) {
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
	split := valSplit{fraction: opts.ValFraction, every: opts.ValEvery}
	if split.every > 0 {
		split.fraction = 0
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
	res.Workers = workers
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
		out    chan encoded
		source int
		skip   bool
		err    error
	}
	type job struct {
		doc document
		out chan encoded
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
		emit := func(d document) error {
			out := make(chan encoded, 1)
			if err := send(slot{out: out, source: d.source}); err != nil {
				return err
			}
			select {
			case jobs <- job{doc: d, out: out}:
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
				j.out <- encodeDocument(tok, eot, j.doc)
			}
		}()
	}

	// Collector: documents arrive in order, a cut one as its pieces. The
	// newest train document is held back so that, once the input ends, its
	// tail can top validation up to the fraction (tokenize_split.go).
	var partial []uint32
	partialBytes := 0
	var pending []uint32
	pendingDoc, pendingSource := -1, 0
	progress := func() {
		if opts.Progress == nil {
			return
		}
		p := TokenizeProgress{Documents: res.Documents, Bytes: res.Bytes + int64(partialBytes), Tokens: train.tokens + val.tokens + int64(len(pending)+len(partial))}
		if read != nil {
			p.InputBytes = read.Load()
		}
		opts.Progress(p)
	}
	for s := range order {
		if s.err != nil {
			return res, s.err
		}
		if s.skip {
			res.Skipped++
			continue
		}
		e := <-s.out
		if e.err != nil {
			return res, e.err
		}
		if e.skip {
			res.Skipped++
			continue
		}
		if e.more || partial != nil {
			partial, partialBytes = append(partial, e.ids...), partialBytes+e.bytes
			if e.more {
				progress()
				continue
			}
			e.ids, e.bytes, partial = partial, partialBytes, nil
		}
		i := res.Documents
		res.Documents++
		res.Bytes += int64(e.bytes)
		if split.toVal(i, len(e.ids)) {
			if err := val.write(e.ids); err != nil {
				return res, err
			}
			res.ValDocuments++
		} else {
			if pendingDoc >= 0 {
				if err := train.write(pending); err != nil {
					return res, err
				}
				res.TrainDocuments++
			}
			pending, pendingDoc, pendingSource = e.ids, i, s.source
		}
		progress()
	}
	if res.Documents == 0 {
		return res, errors.New("tokenize: inputs hold no documents (all empty)")
	}
	if pendingDoc >= 0 {
		n := split.tail(len(pending), res.Documents)
		cut := len(pending) - n
		if cut > 0 {
			if err := train.write(pending[:cut]); err != nil {
				return res, err
			}
			res.TrainDocuments++
		}
		if n > 0 {
			if err := val.write(pending[cut:]); err != nil {
				return res, err
			}
			res.ValDocuments++
			if cut > 0 {
				res.ValCut = &ValCut{Document: pendingDoc, Tokens: int64(n), source: pendingSource}
			}
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

// encodeDocument is a worker's job: the document's text (decoded from its
// JSONL line if need be) encoded and followed by EOT.
func encodeDocument(tok Tokenizer, eot uint32, d document) encoded {
	text := d.text
	if d.line != nil {
		var err error
		if text, err = jsonlText(d.line, d.field); err != nil {
			return encoded{err: fmt.Errorf("jsonl %s: %w", d.where, err)}
		}
	}
	if d.part && !d.last {
		return encoded{ids: tok.Encode(text), bytes: len(text), more: true}
	}
	if text == "" {
		return encoded{skip: true}
	}
	return encoded{ids: append(tok.Encode(text), eot), bytes: len(text)}
}
