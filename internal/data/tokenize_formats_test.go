// Tests of the corpus formats of tokenize (Parquet, zstd and gzip JSONL),
// the manifest beside the shards, and shards left by an earlier run.

package data

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
)

// corpusRow is a row of the test corpus as FineWeb stores it: the text and
// other columns.
type corpusRow struct {
	ID   int64   `parquet:"id" json:"id"`
	Text *string `parquet:"text,optional" json:"text"`
	URL  string  `parquet:"url" json:"url"`
}

func corpusRows() []corpusRow {
	var rows []corpusRow
	for i := range 40 {
		var text *string
		if i != 7 { // row 7 is null, as a Parquet column may hold
			s := fmt.Sprintf("Row %d: %s é 世界\n%s", i, strings.Repeat("words ", i%9), strings.Repeat("ünïcode ", i%4))
			if i == 11 {
				s = ""
			}
			text = &s
		}
		rows = append(rows, corpusRow{ID: int64(i), Text: text, URL: fmt.Sprintf("https://example.com/%d", i)})
	}
	return rows
}

// TestTokenizeParquetAndZstd: a Parquet file (several row groups and pages,
// a null and an empty row), a .jsonl.zst and a .jsonl.gz of the same rows
// give shards identical to the plain JSONL's, and the manifest names the
// sources.
func TestTokenizeParquetAndZstd(t *testing.T) {
	in := t.TempDir()
	tok := mustTokenizer(t, "gpt2")
	rows := corpusRows()
	var jl bytes.Buffer
	for _, r := range rows {
		b, _ := json.Marshal(r)
		jl.Write(append(b, '\n'))
	}
	plain := writeFile(t, filepath.Join(in, "c.jsonl"), jl.String())
	zst := filepath.Join(in, "c.jsonl.zst")
	zw, _ := zstd.NewWriter(nil)
	if err := os.WriteFile(zst, zw.EncodeAll(jl.Bytes(), nil), 0o644); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(jl.Bytes())
	gw.Close()
	gzPath := writeFile(t, filepath.Join(in, "c.jsonl.gz"), gz.String())
	pq := filepath.Join(in, "c.parquet")
	if err := parquet.WriteFile(pq, rows, parquet.MaxRowsPerRowGroup(6), parquet.PageBufferSize(256)); err != nil {
		t.Fatal(err)
	}
	if f, _ := os.Open(pq); f != nil {
		st, _ := f.Stat()
		pf, err := parquet.OpenFile(f, st.Size())
		if err != nil || len(pf.RowGroups()) < 3 {
			t.Fatalf("test file: %v, want several row groups", err)
		}
		f.Close()
	}
	tokenize := func(input string) (string, TokenizeResult) {
		t.Helper()
		out := t.TempDir()
		res, err := TokenizeFiles(TokenizeOptions{Inputs: []string{input}, Tokenizer: tok, OutDir: out, ValFraction: 0.1, ShardTokens: 200})
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(input), err)
		}
		return out, res
	}
	_, wantRes := tokenize(plain)
	if wantRes.Documents != 38 || wantRes.Skipped != 2 || len(wantRes.TrainShards) < 2 || len(wantRes.ValShards) == 0 {
		t.Fatalf("plain JSONL: %+v", wantRes)
	}
	for _, input := range []string{zst, gzPath, pq} {
		got, res := tokenize(input)
		if res.Documents != wantRes.Documents || res.Skipped != wantRes.Skipped {
			t.Errorf("%s: %d documents, %d skipped; JSONL %d, %d", filepath.Base(input), res.Documents, res.Skipped, wantRes.Documents, wantRes.Skipped)
		}
		for _, p := range append(wantRes.TrainShards, wantRes.ValShards...) {
			a, _ := os.ReadFile(p)
			b, err := os.ReadFile(filepath.Join(got, filepath.Base(p)))
			if err != nil || !bytes.Equal(a, b) {
				t.Errorf("%s: shard %s differs from the plain JSONL's (%v)", filepath.Base(input), filepath.Base(p), err)
			}
		}
		var m Manifest
		raw, err := os.ReadFile(filepath.Join(got, ManifestName("")))
		if err != nil || json.Unmarshal(raw, &m) != nil {
			t.Fatalf("%s: manifest: %v", filepath.Base(input), err)
		}
		abs, _ := filepath.Abs(input)
		if len(m.Sources) != 1 || m.Sources[0].Path != abs || m.Tokenizer != "gpt2" || len(m.Train) != len(res.TrainShards) || m.ValTokens != res.ValTokens {
			t.Errorf("%s: manifest %+v", filepath.Base(input), m)
		}
	}
	if _, res := tokenize(pq); !strings.Contains(fmt.Sprint(res.SplitSummary()), "validation:") {
		t.Errorf("summary %q", res.SplitSummary())
	}
}

// Parquet inputs that cannot be read name the file and what is wrong.
func TestTokenizeBadParquet(t *testing.T) {
	in := t.TempDir()
	tok := mustTokenizer(t, "byte")
	type numbers struct {
		Text int64 `parquet:"text"`
	}
	nums := filepath.Join(in, "nums.parquet")
	if err := parquet.WriteFile(nums, []numbers{{1}, {2}}); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(in, "good.parquet")
	if err := parquet.WriteFile(good, corpusRows()); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(good)
	truncated := writeFile(t, filepath.Join(in, "cut.parquet"), string(raw[:len(raw)/2]))
	badZst := writeFile(t, filepath.Join(in, "bad.jsonl.zst"), "not zstd at all")
	for _, c := range []struct {
		input, field string
		want         []string
	}{
		{nums, "text", []string{"nums.parquet", `column "text" holds INT64`}},
		{good, "body", []string{"good.parquet", `no column "body"`, "text", "url"}},
		{truncated, "text", []string{"cut.parquet"}},
		{badZst, "text", []string{"bad.jsonl.zst"}},
	} {
		out := t.TempDir()
		_, err := TokenizeFiles(TokenizeOptions{Inputs: []string{c.input}, Field: c.field, Tokenizer: tok, OutDir: out})
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v does not say %q", filepath.Base(c.input), err, w)
			}
		}
		if ents, _ := os.ReadDir(out); len(ents) != 0 {
			t.Errorf("%s: a failed run left %d files", filepath.Base(c.input), len(ents))
		}
	}
}

// TestTokenizeStaleShards: shards of the same prefix from an earlier run are
// refused, untouched; --overwrite replaces them all (none of the old six
// stays beside the new one); another prefix is left alone.
func TestTokenizeStaleShards(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	tok := mustTokenizer(t, "byte")
	big := writeFile(t, filepath.Join(in, "big.txt"), strings.Repeat("abcdefgh", 700))
	small := writeFile(t, filepath.Join(in, "small.txt"), "a short one")
	res, err := TokenizeFiles(TokenizeOptions{Inputs: []string{big}, Tokenizer: tok, OutDir: out, ShardTokens: 1000})
	if err != nil || len(res.TrainShards) != 6 {
		t.Fatalf("first run: %v, %d shards", err, len(res.TrainShards))
	}
	other := writeFile(t, filepath.Join(out, "web_train_000000.bin"), "another prefix's")
	before := map[string][]byte{}
	for _, p := range res.TrainShards {
		before[p], _ = os.ReadFile(p)
	}
	_, err = TokenizeFiles(TokenizeOptions{Inputs: []string{small}, Tokenizer: tok, OutDir: out, ShardTokens: 1000})
	var stale *StaleShardsError
	if !errors.As(err, &stale) || !strings.Contains(err.Error(), "--overwrite") || !strings.Contains(err.Error(), "train_000000.bin") {
		t.Fatalf("second run into the same directory: %v", err)
	}
	for p, b := range before {
		if now, _ := os.ReadFile(p); !bytes.Equal(now, b) {
			t.Errorf("refused run changed %s", p)
		}
	}
	res, err = TokenizeFiles(TokenizeOptions{Inputs: []string{small}, Tokenizer: tok, OutDir: out, ShardTokens: 1000, Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Replaced) != 6 {
		t.Errorf("replaced %v, want the 6 old shards", res.Replaced)
	}
	left, _ := filepath.Glob(filepath.Join(out, "train_*.bin"))
	if !reflect.DeepEqual(left, res.TrainShards) {
		t.Errorf("train_*.bin is %v, want only the new %v", left, res.TrainShards)
	}
	if got := tok.Decode(readShards(t, left)); got != "a short one"+EOTText {
		t.Errorf("train_*.bin reads %q", got)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another prefix's shard was removed: %v", err)
	}
	if ents, _ := filepath.Glob(filepath.Join(out, ".tokenize-tmp-*")); len(ents) != 0 {
		t.Errorf("staging left behind: %v", ents)
	}
}
