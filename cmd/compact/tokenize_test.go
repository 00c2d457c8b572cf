package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
)

// shakespeare is a one-file corpus as nanoGPT users start from.
func shakespeare(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "input.txt")
	text := strings.Repeat("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n", 300)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Issue 21 item 1: one input.txt gives train and validation shards, the
// split reported within 1% of --val-fraction in tokens, and pretrain takes
// them as they are.
func TestTokenizeOneFileThenPretrain(t *testing.T) {
	out := t.TempDir()
	code, _, stderr := runAll(t, nil, "tokenize", "--tokenizer", "byte", "--out", out, "--val-fraction", "0.05", shakespeare(t))
	if code != 0 {
		t.Fatalf("tokenize: exit %d: %s", code, stderr)
	}
	m := regexp.MustCompile(`validation: (\d+) tokens \(([\d.]+)% of (\d+)\): the last \d+ tokens of input.txt`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("tokenize does not say how it split:\n%s", stderr)
	}
	val, _ := strconv.ParseFloat(m[1], 64)
	total, _ := strconv.ParseFloat(m[3], 64)
	if frac := val / total; frac < 0.05*0.99 || frac > 0.05*1.01 {
		t.Errorf("validation is %.4f of the tokens, want 0.05 within 1%%", frac)
	}
	for _, want := range []string{"train_000000.bin", "val_000000.bin", "tokenize.json"} {
		if _, err := os.Stat(filepath.Join(out, want)); err != nil {
			t.Errorf("no %s: %v", want, err)
		}
	}
	args := append([]string{"pretrain", "--out", filepath.Join(t.TempDir(), "run"), "--steps", "2"},
		smallRun(filepath.Join(out, "train_*.bin"), filepath.Join(out, "val_*.bin"))...)
	if code, stderr := run(t, nil, args...); code != 0 {
		t.Fatalf("pretrain on the shards: exit %d: %s", code, stderr)
	}
}

// Issue 21 item 2: a Parquet file with a text column and a .jsonl.zst give
// the shards of the same text as plain JSONL.
func TestTokenizeParquetAndZstdCLI(t *testing.T) {
	in := t.TempDir()
	type row struct {
		Text string `parquet:"text" json:"text"`
		Lang string `parquet:"lang" json:"lang"`
	}
	var rows []row
	var jl bytes.Buffer
	for i := range 30 {
		r := row{Text: strings.Repeat("The quick brown fox "+strconv.Itoa(i)+". ", 1+i%5), Lang: "en"}
		rows = append(rows, r)
		b, _ := json.Marshal(r)
		jl.Write(append(b, '\n'))
	}
	plain := filepath.Join(in, "docs.jsonl")
	os.WriteFile(plain, jl.Bytes(), 0o644)
	zw, _ := zstd.NewWriter(nil)
	zst := filepath.Join(in, "docs.jsonl.zst")
	os.WriteFile(zst, zw.EncodeAll(jl.Bytes(), nil), 0o644)
	pq := filepath.Join(in, "docs.parquet")
	if err := parquet.WriteFile(pq, rows, parquet.MaxRowsPerRowGroup(7)); err != nil {
		t.Fatal(err)
	}
	shardsOf := func(input string) map[string][]byte {
		t.Helper()
		out := t.TempDir()
		if code, _, stderr := runAll(t, nil, "tokenize", "--out", out, "--val-fraction", "0.1", input); code != 0 {
			t.Fatalf("tokenize %s: exit %d: %s", filepath.Base(input), code, stderr)
		}
		got := map[string][]byte{}
		paths, _ := filepath.Glob(filepath.Join(out, "*.bin"))
		for _, p := range paths {
			got[filepath.Base(p)], _ = os.ReadFile(p)
		}
		raw, _ := os.ReadFile(filepath.Join(out, "tokenize.json"))
		if !strings.Contains(string(raw), filepath.Base(input)) {
			t.Errorf("%s: the manifest does not name the source:\n%s", filepath.Base(input), raw)
		}
		return got
	}
	want := shardsOf(plain)
	if len(want) != 2 {
		t.Fatalf("plain JSONL gave %d shards", len(want))
	}
	for _, input := range []string{pq, zst} {
		got := shardsOf(input)
		if len(got) != len(want) {
			t.Errorf("%s: %d shards, JSONL %d", filepath.Base(input), len(got), len(want))
		}
		for name, b := range want {
			if !bytes.Equal(got[name], b) {
				t.Errorf("%s: %s differs from the plain JSONL's", filepath.Base(input), name)
			}
		}
	}
}

// Issue 22 item 6: tokenize into a directory holding an earlier run's
// shards is refused (exit 2, nothing changed); --overwrite replaces them,
// so train_*.bin reads only the new ones.
func TestTokenizeStaleShardsCLI(t *testing.T) {
	out := t.TempDir()
	input := shakespeare(t)
	if code, stderr := run(t, nil, "tokenize", "--tokenizer", "byte", "--shard-tokens", "4000", "--out", out, input); code != 0 {
		t.Fatalf("first tokenize: exit %d: %s", code, stderr)
	}
	old, _ := filepath.Glob(filepath.Join(out, "train_*.bin"))
	if len(old) < 6 {
		t.Fatalf("first run wrote %d train shards, want several", len(old))
	}
	before := snapshot(t, out)
	small := filepath.Join(t.TempDir(), "small.txt")
	os.WriteFile(small, []byte(strings.Repeat("a new corpus. ", 40)), 0o644)
	expectUsage(t, nil, "--overwrite", "tokenize", "--tokenizer", "byte", "--shard-tokens", "4000", "--out", out, small)
	sameFiles(t, "refused tokenize", before, snapshot(t, out))
	code, stderr := run(t, nil, "tokenize", "--tokenizer", "byte", "--shard-tokens", "4000", "--out", out, "--overwrite", small)
	if code != 0 || !strings.Contains(stderr, "replaced") {
		t.Fatalf("tokenize --overwrite: exit %d: %s", code, stderr)
	}
	if now, _ := filepath.Glob(filepath.Join(out, "train_*.bin")); len(now) != 1 {
		t.Errorf("after --overwrite train_*.bin matches %v, want the one new shard", now)
	}
}

// Issue 21 item 6: on a terminal the summary starts on its own line, not on
// the progress bar's.
func TestTokenizeSummaryOnItsOwnLine(t *testing.T) {
	var stdout, stderr bytes.Buffer
	opts := tokenizeOptions{tokenizer: "byte", inputs: []string{shakespeare(t)}}
	opts.tokenize.OutDir, opts.tokenize.ValFraction = t.TempDir(), 0.01
	if err := runTokenize(context.Background(), opts, streams{out: &stdout, err: &stderr, tty: true}); err != nil {
		t.Fatal(err)
	}
	s := stderr.String()
	i := strings.Index(s, "tokenized ")
	if i < 0 {
		t.Fatalf("no summary:\n%q", s)
	}
	if line := s[strings.LastIndexAny(s[:i], "\r\n")+1 : i]; strings.TrimSpace(line) != "" {
		t.Errorf("the summary shares its line with %q", line)
	}
	if !strings.Contains(s, "/s on ") {
		t.Errorf("no throughput in the summary:\n%s", s)
	}
}

// Issue 21 item 8: tokenize --special-tokens map (the default) turns
// special-token text into the special id, text keeps it text; the manifest
// says which.
func TestTokenizeSpecialTokensEachWay(t *testing.T) {
	in := filepath.Join(t.TempDir(), "chat.jsonl")
	os.WriteFile(in, []byte(`{"text":"Hi<|endoftext|>there"}`+"\n"+`{"text":"plain"}`+"\n"), 0o644)
	eots := func(mode string) int {
		t.Helper()
		out := t.TempDir()
		args := []string{"tokenize", "--out", out, "--val-fraction", "0", in}
		if mode != "" {
			args = append(args, "--special-tokens", mode)
		}
		if code, stderr := run(t, nil, args...); code != 0 {
			t.Fatalf("tokenize --special-tokens %q: exit %d: %s", mode, code, stderr)
		}
		raw, _ := os.ReadFile(filepath.Join(out, "train_000000.bin"))
		n := 0
		for i := 1024; i+1 < len(raw); i += 2 {
			if int(raw[i])|int(raw[i+1])<<8 == 50256 {
				n++
			}
		}
		manifest, _ := os.ReadFile(filepath.Join(out, "tokenize.json"))
		want := mode
		if want == "" {
			want = "map"
		}
		if !strings.Contains(string(manifest), `"special_tokens": "`+want+`"`) {
			t.Errorf("manifest does not record special_tokens %s:\n%s", want, manifest)
		}
		return n
	}
	if n := eots(""); n != 3 {
		t.Errorf("default (map): %d end-of-text ids, want 3 (one in the text, one per document)", n)
	}
	if n := eots("text"); n != 2 {
		t.Errorf("text: %d end-of-text ids, want 2 (one per document)", n)
	}
	expectUsage(t, nil, "--special-tokens", "tokenize", "--out", t.TempDir(), "--special-tokens", "maybe", in)
}
