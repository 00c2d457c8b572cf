package data

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/binary"
	"fmt"
	"io"
)

// The GPT-2 (r50k_base) vocabulary, ids 0..50255 in order, each as a
// uvarint length and the token's bytes, gzipped. It is the vocabulary of
// github.com/tiktoken-go/tokenizer, extracted by TestGPT2VocabFile
// (go test ./internal/data -run TestGPT2VocabFile -update-gpt2-vocab), which
// also checks it against that package token by token. Embedding the data
// instead of importing tiktoken-go's codec package keeps the binary's build
// from compiling that package's 15.7 MB of Go source for four vocabularies.
//
//go:embed gpt2_vocab.bin.gz
var gpt2VocabGz []byte

// gpt2Vocab decodes the embedded vocabulary: token bytes by id.
func readGPT2Vocab(gz []byte) ([]string, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("gpt2 vocabulary: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("gpt2 vocabulary: %w", err)
	}
	out := make([]string, 0, gpt2EOT)
	for len(raw) > 0 {
		n, k := binary.Uvarint(raw)
		if k <= 0 || uint64(len(raw)-k) < n {
			return nil, fmt.Errorf("gpt2 vocabulary: corrupt entry %d", len(out))
		}
		out = append(out, string(raw[k:k+int(n)]))
		raw = raw[k+int(n):]
	}
	if len(out) != gpt2EOT {
		return nil, fmt.Errorf("gpt2 vocabulary: %d tokens, want %d", len(out), gpt2EOT)
	}
	return out, nil
}

// encodeGPT2Vocab is the inverse of readGPT2Vocab (for the generator).
func encodeGPT2Vocab(tokens []string) ([]byte, error) {
	var raw bytes.Buffer
	var lenBuf [binary.MaxVarintLen64]byte
	for _, s := range tokens {
		raw.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(s)))])
		raw.WriteString(s)
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	zw.Write(raw.Bytes())
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return gz.Bytes(), nil
}
