// This file reads the inputs of `compact tokenize`: plain text (one document
// per file), JSONL (one document per line) and Parquet (one document per
// row of a string column), each optionally compressed with gzip (.gz) or
// zstd (.zst, .zstd). Inputs are streamed: a JSONL line or a Parquet page is
// in memory at a time, never a whole compressed file.

package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
)

// Input formats for TokenizeOptions.Format.
const (
	InputAuto    = "auto"    // by extension (after .gz/.zst): .jsonl/.ndjson are JSONL, .parquet is Parquet, the rest text
	InputText    = "text"    // each file is one document
	InputJSONL   = "jsonl"   // each non-blank line is a JSON object holding one document
	InputParquet = "parquet" // each row's string column (Field) is one document
)

// InputFormats lists the valid TokenizeOptions.Format values.
var InputFormats = []string{InputAuto, InputText, InputJSONL, InputParquet}

// document is one document on its way to a worker: its text, or a JSONL
// line whose field a worker extracts (so JSON decoding runs on every core).
type document struct {
	text   string
	part   bool // a piece of a document cut by textChunker; more follow unless last
	last   bool
	line   []byte // JSONL: the raw line; text is then empty
	field  string // JSONL: the field holding the text
	where  string // JSONL: file:line, for errors
	source int    // index of the input file
}

// decompressors by file suffix: the reader of a compressed stream.
var decompressors = map[string]func(io.Reader) (io.ReadCloser, error){
	".gz": func(r io.Reader) (io.ReadCloser, error) { return gzip.NewReader(r) },
	".zst": func(r io.Reader) (io.ReadCloser, error) {
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	},
}

func init() { decompressors[".zstd"] = decompressors[".zst"] }

// compression is the compression suffix of path ("" when none).
func compression(path string) string {
	ext := strings.ToLower(filepath.Ext(path))
	if _, ok := decompressors[ext]; ok {
		return ext
	}
	return ""
}

// inputFormat resolves format for one file: InputAuto goes by extension.
func inputFormat(path, format string) string {
	if format != "" && format != InputAuto {
		return format
	}
	base := path
	if c := compression(path); c != "" {
		base = path[:len(path)-len(c)]
	}
	switch strings.ToLower(filepath.Ext(base)) {
	case ".jsonl", ".ndjson":
		return InputJSONL
	case ".parquet":
		return InputParquet
	}
	return InputText
}

// countingFile counts the bytes read from an input file, for progress.
type countingFile struct {
	f *os.File
	n *atomic.Int64
}

func (c countingFile) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c countingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.f.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// inputReader reads the documents of the inputs in order.
type inputReader struct {
	field string
	read  *atomic.Int64         // bytes read from the input files so far
	chunk func(string) []string // cuts a text document for all cores (tokenize_chunks.go); nil: whole
}

// readInput emits the documents of input file number source.
func (ir inputReader) readInput(ctx context.Context, path, format string, source int, emit func(document) error, skip func()) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("input %s: %w", path, err)
	}
	defer f.Close()
	cf := countingFile{f: f, n: ir.read}
	if format == InputParquet {
		if c := compression(path); c != "" {
			return fmt.Errorf("input %s: a Parquet file compresses its own pages; %s around it is not supported", path, c)
		}
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("input %s: %w", path, err)
		}
		return ir.readParquet(ctx, path, cf, st.Size(), source, emit, skip)
	}
	var r io.Reader = bufio.NewReaderSize(cf, 1<<20)
	if c := compression(path); c != "" {
		dr, err := decompressors[c](r)
		if err != nil {
			return fmt.Errorf("input %s: %w", path, err)
		}
		defer dr.Close()
		r = dr
	}
	if format == InputText {
		b, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("input %s: %w", path, err)
		}
		if len(b) == 0 {
			skip()
			return nil
		}
		if ir.chunk == nil {
			return emit(document{text: string(b), source: source})
		}
		pieces := ir.chunk(string(b))
		for i, p := range pieces {
			if err := emit(document{text: p, part: true, last: i == len(pieces)-1, source: source}); err != nil {
				return err
			}
		}
		return nil
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
		} else if err := emit(document{line: b, field: ir.field, where: fmt.Sprintf("%s:%d", path, line), source: source}); err != nil {
			return err
		}
		if rerr == io.EOF {
			return nil
		}
	}
}

// readParquet emits the string column ir.field of every row, row group by
// row group, a page at a time. A null or empty value is an empty document.
func (ir inputReader) readParquet(ctx context.Context, path string, r io.ReaderAt, size int64, source int, emit func(document) error, skip func()) error {
	pf, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return fmt.Errorf("parquet %s: %w", path, err)
	}
	leaf, ok := pf.Schema().Lookup(ir.field)
	if !ok {
		var names []string
		for _, c := range pf.Schema().Columns() {
			names = append(names, strings.Join(c, "."))
		}
		return fmt.Errorf("parquet %s: no column %q (--field); columns: %s", path, ir.field, strings.Join(names, ", "))
	}
	if leaf.MaxRepetitionLevel > 0 {
		return fmt.Errorf("parquet %s: column %q is a list; --field must name a string column", path, ir.field)
	}
	if k := leaf.Node.Type().Kind(); k != parquet.ByteArray {
		return fmt.Errorf("parquet %s: column %q holds %s values, not strings", path, ir.field, k)
	}
	values := make([]parquet.Value, 256)
	for g, rg := range pf.RowGroups() {
		vr := parquet.NewColumnChunkValueReader(rg.ColumnChunks()[leaf.ColumnIndex])
		for {
			if err := ctx.Err(); err != nil {
				vr.Close()
				return err
			}
			n, rerr := vr.ReadValues(values)
			for _, v := range values[:n] {
				if v.IsNull() || len(v.ByteArray()) == 0 {
					skip()
					continue
				}
				// string() copies: the page's buffer is reused after the next read.
				if err := emit(document{text: string(v.ByteArray()), source: source}); err != nil {
					vr.Close()
					return err
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				vr.Close()
				return fmt.Errorf("parquet %s: row group %d: %w", path, g, rerr)
			}
		}
		if err := vr.Close(); err != nil {
			return fmt.Errorf("parquet %s: row group %d: %w", path, g, err)
		}
	}
	return nil
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
