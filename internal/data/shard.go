// Package data turns text into token shards and streams them to training:
// shard files, tokenizers, the tokenize pipeline, the default corpus and the
// data loader.
//
// This file holds the shard formats: llm.c-compatible .bin shards (a 256 x
// int32 little-endian header, then uint16 or uint32 tokens) and headerless
// nanoGPT-style uint16 files, with a reader that validates header and size
// and an atomic writer.
package data

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
)

// llm.c shard header constants.
const (
	HeaderInts  = 256            // int32 words in an llm.c header
	HeaderBytes = HeaderInts * 4 // 1024

	MagicUint16   = 20240520 // llm.c magic for uint16 tokens
	VersionUint16 = 1
	MagicUint32   = 20240801 // llm.c magic for uint32 tokens
	VersionUint32 = 7

	// TagMagic in header word 3 says that words 4.. record the tokenizer
	// that wrote the shard: word 4 is the name's length in bytes, words
	// 5..20 (64 bytes) the name (e.g. "gpt2", "byte", "hf-<hash>"). llm.c
	// leaves these words zero and ignores them, so tagged shards stay
	// llm.c-compatible and untagged (older or foreign) shards still load.
	TagMagic   = 0x6b6f7421 // "!tok" little-endian
	tagNameOff = 5 * 4
	tagNameMax = 64
)

// Shard formats understood by OpenShardFormat and the loader.
const (
	FormatLLMC    = "llmc"    // llm.c .bin: header + uint16/uint32 tokens
	FormatNanoGPT = "nanogpt" // headerless uint16 (nanoGPT train.bin/val.bin)
)

// Formats lists the valid shard format names.
var Formats = []string{FormatLLMC, FormatNanoGPT}

// CheckFormat returns an error unless format names a shard format ("" means
// llmc).
func CheckFormat(format string) error {
	switch format {
	case "", FormatLLMC, FormatNanoGPT:
		return nil
	}
	return fmt.Errorf("unknown shard format %q (valid: %s, %s)", format, FormatLLMC, FormatNanoGPT)
}

// Shard is an open token file. Tokens are read on demand with ReadAt, so a
// shard of any size costs one file descriptor and no memory. Read is safe for
// concurrent use.
type Shard struct {
	f       *os.File
	path    string
	n       int   // tokens
	tokSize int   // 2 or 4 bytes
	dataOff int64 // byte offset of token 0
	tok     string
	pool    sync.Pool
}

// Tokenizer is the name of the tokenizer recorded in the shard's header, or
// "" for a shard that records none (llm.c's own, nanoGPT files, or shards
// written before the tag existed).
func (s *Shard) Tokenizer() string { return s.tok }

// headerTokenizer decodes the tokenizer tag of an llm.c header.
func headerTokenizer(hdr []byte) (string, error) {
	if binary.LittleEndian.Uint32(hdr[12:]) != TagMagic {
		return "", nil
	}
	n := binary.LittleEndian.Uint32(hdr[16:])
	if n == 0 || n > tagNameMax {
		return "", fmt.Errorf("tokenizer tag of %d bytes (want 1 to %d)", n, tagNameMax)
	}
	name := hdr[tagNameOff : tagNameOff+int(n)]
	for _, c := range name {
		if c < 0x21 || c > 0x7e {
			return "", fmt.Errorf("tokenizer tag %q is not printable ASCII", name)
		}
	}
	return string(name), nil
}

// ReadShardTokenizer returns the tokenizer recorded in the llm.c header of
// path ("" when none is recorded).
func ReadShardTokenizer(path string) (string, error) {
	f, size, err := openFile(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if size < HeaderBytes {
		return "", fmt.Errorf("shard %s: shorter than the %d-byte llm.c header", path, HeaderBytes)
	}
	var hdr [HeaderBytes]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return "", fmt.Errorf("shard %s: reading header: %w", path, err)
	}
	name, err := headerTokenizer(hdr[:])
	if err != nil {
		return "", fmt.Errorf("shard %s: %w", path, err)
	}
	return name, nil
}

// OpenShardFormat opens path as the given format ("" or "llmc": llm.c .bin
// with header; "nanogpt": headerless uint16).
func OpenShardFormat(path, format string) (*Shard, error) {
	switch format {
	case "", FormatLLMC:
		return OpenShard(path)
	case FormatNanoGPT:
		return OpenRawShard(path)
	}
	return nil, fmt.Errorf("shard %s: %w", path, CheckFormat(format))
}

// openFile opens path for reading and returns its size, refusing
// directories, FIFOs and devices (OpenRegular).
func openFile(path string) (*os.File, int64, error) {
	f, st, err := OpenRegular(path)
	if err != nil {
		return nil, 0, fmt.Errorf("shard %s: %w", path, err)
	}
	return f, st.Size(), nil
}

// OpenShard opens an llm.c .bin shard and validates its magic, version and
// that the file size is exactly header + count * token size.
func OpenShard(path string) (*Shard, error) {
	f, size, err := openFile(path)
	if err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) (*Shard, error) {
		f.Close()
		return nil, fmt.Errorf("shard %s: %s", path, fmt.Sprintf(format, args...))
	}
	if size == 0 {
		return fail("file is empty (0 bytes); an llm.c shard starts with a %d-byte header", HeaderBytes)
	}
	if size < HeaderBytes {
		return fail("file holds %d bytes, shorter than the %d-byte llm.c header (truncated?)", size, HeaderBytes)
	}
	var hdr [HeaderBytes]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("shard %s: reading header: %w", path, err)
	}
	magic := int32(binary.LittleEndian.Uint32(hdr[0:]))
	version := int32(binary.LittleEndian.Uint32(hdr[4:]))
	count := int32(binary.LittleEndian.Uint32(hdr[8:]))
	var tokSize int
	switch magic {
	case MagicUint16:
		if version != VersionUint16 {
			return fail("magic %d (uint16 tokens) needs version %d, header says version %d", magic, VersionUint16, version)
		}
		tokSize = 2
	case MagicUint32:
		if version != VersionUint32 {
			return fail("magic %d (uint32 tokens) needs version %d, header says version %d", magic, VersionUint32, version)
		}
		tokSize = 4
	default:
		return fail("bad magic %d (want %d for uint16 or %d for uint32 tokens); not an llm.c shard — for a headerless nanoGPT file use format %q",
			magic, MagicUint16, MagicUint32, FormatNanoGPT)
	}
	if count < 0 {
		return fail("header says %d tokens (negative count)", count)
	}
	tok, err := headerTokenizer(hdr[:])
	if err != nil {
		return fail("%v", err)
	}
	want := int64(count) * int64(tokSize)
	have := size - HeaderBytes
	if have != want {
		what := "truncated"
		if have > want {
			what = "trailing bytes after the last token"
		}
		return fail("header says %d tokens (%d bytes of uint%d) but file holds %d bytes of tokens (%s)",
			count, want, tokSize*8, have, what)
	}
	return &Shard{f: f, path: path, n: int(count), tokSize: tokSize, dataOff: HeaderBytes, tok: tok}, nil
}

// OpenRawShard opens a headerless file of little-endian uint16 tokens, as
// written by nanoGPT's prepare.py (train.bin, val.bin).
func OpenRawShard(path string) (*Shard, error) {
	f, size, err := openFile(path)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		f.Close()
		return nil, fmt.Errorf("shard %s: file is empty (0 bytes), no tokens", path)
	}
	if size%2 != 0 {
		f.Close()
		return nil, fmt.Errorf("shard %s: headerless uint16 file must have an even size, holds %d bytes (truncated or not a nanoGPT token file)", path, size)
	}
	if size/2 > math.MaxInt32 {
		f.Close()
		return nil, fmt.Errorf("shard %s: %d tokens is more than this reader supports (%d)", path, size/2, math.MaxInt32)
	}
	return &Shard{f: f, path: path, n: int(size / 2), tokSize: 2}, nil
}

// Path returns the file the shard was opened from.
func (s *Shard) Path() string { return s.path }

// Len returns the number of tokens in the shard.
func (s *Shard) Len() int { return s.n }

// TokenSize returns the bytes per token on disk (2 or 4).
func (s *Shard) TokenSize() int { return s.tokSize }

// Read fills dst with tokens [off, off+len(dst)) of the shard.
func (s *Shard) Read(dst []int32, off int) error {
	if s.f == nil {
		return fmt.Errorf("shard %s: read after Close", s.path)
	}
	if off < 0 || len(dst) > s.n-off || off > s.n {
		return fmt.Errorf("shard %s: read of tokens [%d, %d) is outside the shard's %d tokens", s.path, off, off+len(dst), s.n)
	}
	if len(dst) == 0 {
		return nil
	}
	nb := len(dst) * s.tokSize
	var buf []byte
	if p, ok := s.pool.Get().(*[]byte); ok && cap(*p) >= nb {
		buf = (*p)[:nb]
	} else {
		buf = make([]byte, nb)
	}
	defer s.pool.Put(&buf)
	if _, err := s.f.ReadAt(buf, s.dataOff+int64(off)*int64(s.tokSize)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("shard %s: reading tokens [%d, %d): %w (file changed since it was opened?)", s.path, off, off+len(dst), err)
	}
	if s.tokSize == 2 {
		for i := range dst {
			dst[i] = int32(binary.LittleEndian.Uint16(buf[2*i:]))
		}
		return nil
	}
	for i := range dst {
		v := binary.LittleEndian.Uint32(buf[4*i:])
		if v > math.MaxInt32 {
			return fmt.Errorf("shard %s: token %d at position %d does not fit in int32", s.path, v, off+i)
		}
		dst[i] = int32(v)
	}
	return nil
}

// Close releases the file. It is safe to call more than once.
func (s *Shard) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("shard %s: %w", s.path, err)
	}
	return nil
}

// WriteShard writes tokens to path as an llm.c shard, uint16 when every token
// is below 65536 and uint32 otherwise. The file appears atomically: it is
// written to a temporary file in the same directory, synced and renamed.
func WriteShard(path string, tokens []uint32) error {
	wide := false
	for _, t := range tokens {
		if t > math.MaxUint16 {
			wide = true
			break
		}
	}
	w, err := CreateShard(path, wide)
	if err != nil {
		return err
	}
	if err := w.Write(tokens); err != nil {
		w.Abort()
		return err
	}
	return w.Close()
}

// ShardWriter streams tokens into an llm.c shard. Nothing is visible at the
// final path until Close succeeds; Abort discards the partial file.
type ShardWriter struct {
	path string
	tmp  *os.File
	bw   *bufio.Writer
	wide bool
	n    int64
	buf  []byte
	tok  string
	done bool
}

// SetTokenizer records the tokenizer's name in the header written by Close,
// so that training can refuse shards made with another vocabulary.
func (w *ShardWriter) SetTokenizer(name string) error {
	if len(name) == 0 || len(name) > tagNameMax {
		return fmt.Errorf("shard %s: tokenizer name %q: want 1 to %d bytes", w.path, name, tagNameMax)
	}
	for _, c := range []byte(name) {
		if c < 0x21 || c > 0x7e {
			return fmt.Errorf("shard %s: tokenizer name %q is not printable ASCII", w.path, name)
		}
	}
	w.tok = name
	return nil
}

// CreateShard starts a shard at path; wide selects uint32 tokens (magic
// 20240801) instead of uint16 (magic 20240520).
func CreateShard(path string, wide bool) (*ShardWriter, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("shard %s: %w", path, err)
	}
	w := &ShardWriter{path: path, tmp: tmp, bw: bufio.NewWriterSize(tmp, 1<<20), wide: wide}
	if err := tmp.Chmod(0o644); err != nil { // CreateTemp makes 0600; shards are shareable data
		w.Abort()
		return nil, fmt.Errorf("shard %s: %w", path, err)
	}
	if _, err := w.bw.Write(make([]byte, HeaderBytes)); err != nil { // placeholder header
		w.Abort()
		return nil, fmt.Errorf("shard %s: %w", path, err)
	}
	return w, nil
}

// Path returns the final path of the shard.
func (w *ShardWriter) Path() string { return w.path }

// Len returns the number of tokens written so far.
func (w *ShardWriter) Len() int64 { return w.n }

// Write appends tokens.
func (w *ShardWriter) Write(tokens []uint32) error {
	if w.done {
		return fmt.Errorf("shard %s: write after Close", w.path)
	}
	if w.n+int64(len(tokens)) > math.MaxInt32 {
		return fmt.Errorf("shard %s: more than %d tokens do not fit an llm.c header; use smaller shards", w.path, math.MaxInt32)
	}
	size := 2
	if w.wide {
		size = 4
	}
	if cap(w.buf) < len(tokens)*size {
		w.buf = make([]byte, len(tokens)*size)
	}
	b := w.buf[:len(tokens)*size]
	if w.wide {
		for i, t := range tokens {
			binary.LittleEndian.PutUint32(b[4*i:], t)
		}
	} else {
		for i, t := range tokens {
			if t > math.MaxUint16 {
				return fmt.Errorf("shard %s: token %d does not fit a uint16 shard", w.path, t)
			}
			binary.LittleEndian.PutUint16(b[2*i:], uint16(t))
		}
	}
	if _, err := w.bw.Write(b); err != nil {
		return fmt.Errorf("shard %s: %w", w.path, err)
	}
	w.n += int64(len(tokens))
	return nil
}

// Close writes the header, syncs and renames the shard into place.
func (w *ShardWriter) Close() error {
	if w.done {
		return nil
	}
	fail := func(err error) error {
		w.Abort()
		return fmt.Errorf("shard %s: %w", w.path, err)
	}
	if err := w.bw.Flush(); err != nil {
		return fail(err)
	}
	var hdr [HeaderBytes]byte
	magic, version := uint32(MagicUint16), uint32(VersionUint16)
	if w.wide {
		magic, version = MagicUint32, VersionUint32
	}
	binary.LittleEndian.PutUint32(hdr[0:], magic)
	binary.LittleEndian.PutUint32(hdr[4:], version)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(w.n))
	if w.tok != "" {
		binary.LittleEndian.PutUint32(hdr[12:], TagMagic)
		binary.LittleEndian.PutUint32(hdr[16:], uint32(len(w.tok)))
		copy(hdr[tagNameOff:], w.tok)
	}
	if _, err := w.tmp.WriteAt(hdr[:], 0); err != nil {
		return fail(err)
	}
	if err := w.tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := w.tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(w.tmp.Name(), w.path); err != nil {
		os.Remove(w.tmp.Name())
		w.done = true
		return fmt.Errorf("shard %s: %w", w.path, err)
	}
	w.done = true
	syncDir(filepath.Dir(w.path))
	return nil
}

// Abort discards the partial shard. It is safe to call after Close.
func (w *ShardWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.tmp.Close()
	os.Remove(w.tmp.Name())
}

// syncDir makes a rename durable where the platform allows it (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
