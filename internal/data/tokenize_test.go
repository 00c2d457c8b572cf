// Tests of the tokenize pipeline: document order and separators, the
// train/val split, shard splitting, determinism and bad input.

package data

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// readShards concatenates the tokens of paths.
func readShards(t *testing.T, paths []string) []uint32 {
	t.Helper()
	var out []uint32
	for _, p := range paths {
		s, err := OpenShard(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range readAll(t, s) {
			out = append(out, uint32(v))
		}
		s.Close()
	}
	return out
}

func encodeDocs(tok Tokenizer, docs []string) []uint32 {
	var out []uint32
	for _, d := range docs {
		out = append(out, tok.Encode(d)...)
		out = append(out, tok.EOT())
	}
	return out
}

func TestTokenizeTextAndJSONL(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	tok := mustTokenizer(t, "gpt2")
	var docs []string
	for i := range 5 {
		d := fmt.Sprintf("Document %d.\nIt has some text, and \"quotes\" %d.\n", i, i*i)
		docs = append(docs, d)
		writeFile(t, filepath.Join(in, fmt.Sprintf("doc%d.txt", i)), d)
	}
	var jl strings.Builder
	for i := range 7 {
		d := fmt.Sprintf("json doc %d with unicode é 世界 and a\nnewline", i)
		docs = append(docs, d)
		fmt.Fprintf(&jl, "{\"id\": %d, \"body\": %q}\n", i, d)
		if i == 2 {
			jl.WriteString("\n   \n") // blank lines are skipped
		}
	}
	writeFile(t, filepath.Join(in, "more.jsonl"), jl.String())
	inputs, err := ExpandGlobs([]string{filepath.Join(in, "*.txt"), filepath.Join(in, "*.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	res, err := TokenizeFiles(TokenizeOptions{
		Inputs: inputs, Field: "body", Tokenizer: tok, OutDir: out, Prefix: "mix", ValFraction: 0.25,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Whole documents go to validation while they keep it at or below a
	// quarter of the tokens so far; the last training document's tail tops
	// it up to a quarter of all tokens.
	var train, val []string
	var total, vt int
	for _, d := range docs {
		n := len(tok.Encode(d)) + 1
		total += n
		if 4*(vt+n) <= total {
			val, vt = append(val, d), vt+n
		} else {
			train = append(train, d)
		}
	}
	if res.Documents != 12 || res.ValDocuments < 2 || res.Skipped != 2 {
		t.Fatalf("result %+v", res)
	}
	wantShards := []string{filepath.Join(out, "mix_train_000000.bin")}
	if !reflect.DeepEqual(res.TrainShards, wantShards) || len(res.ValShards) != 1 || filepath.Base(res.ValShards[0]) != "mix_val_000000.bin" {
		t.Fatalf("shards %v %v", res.TrainShards, res.ValShards)
	}
	gotTrain, gotVal := readShards(t, res.TrainShards), readShards(t, res.ValShards)
	wantTrain, wantVal := encodeDocs(tok, train), encodeDocs(tok, val)
	if res.ValCut != nil { // the tail of the last training document
		cut := len(wantTrain) - int(res.ValCut.Tokens)
		wantTrain, wantVal = wantTrain[:cut], append(wantVal, wantTrain[cut:]...)
	}
	if !reflect.DeepEqual(gotTrain, wantTrain) {
		t.Fatal("train tokens differ from the documents encoded in order, each followed by EOT")
	}
	if !reflect.DeepEqual(gotVal, wantVal) {
		t.Fatal("val tokens differ")
	}
	if want := (len(gotTrain) + len(gotVal) + 2) / 4; len(gotVal) != want {
		t.Errorf("%d val tokens of %d, want %d", len(gotVal), len(gotTrain)+len(gotVal), want)
	}
	if int64(len(gotTrain)) != res.TrainTokens || int64(len(gotVal)) != res.ValTokens {
		t.Fatalf("token counts %d %d vs result %+v", len(gotTrain), len(gotVal), res)
	}
}

func TestTokenizeShardSplittingAndDeterminism(t *testing.T) {
	in := t.TempDir()
	tok := mustTokenizer(t, "byte")
	var inputs, docs []string
	for i := range 40 {
		d := strings.Repeat(fmt.Sprintf("doc %d; ", i), 1+i%7)
		docs = append(docs, d)
		inputs = append(inputs, writeFile(t, filepath.Join(in, fmt.Sprintf("%02d.txt", i)), d))
	}
	run := func(workers int) (TokenizeResult, string) {
		out := t.TempDir()
		res, err := TokenizeFiles(TokenizeOptions{Inputs: inputs, Tokenizer: tok, OutDir: out, ShardTokens: 300, Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		return res, out
	}
	res1, out1 := run(1)
	res4, out4 := run(4)
	if len(res1.TrainShards) < 3 || len(res1.ValShards) != 0 {
		t.Fatalf("shards %v %v", res1.TrainShards, res1.ValShards)
	}
	all := readShards(t, res1.TrainShards)
	if !reflect.DeepEqual(all, encodeDocs(tok, docs)) {
		t.Fatal("concatenated shards differ from the documents")
	}
	for i, p := range res1.TrainShards {
		s, err := OpenShard(p)
		if err != nil {
			t.Fatal(err)
		}
		if i < len(res1.TrainShards)-1 && s.Len() != 300 {
			t.Fatalf("shard %s holds %d tokens, want 300", p, s.Len())
		}
		s.Close()
		if filepath.Base(p) != fmt.Sprintf("train_%06d.bin", i) {
			t.Fatalf("shard name %s", p)
		}
		a, _ := os.ReadFile(p)
		b, _ := os.ReadFile(filepath.Join(out4, filepath.Base(p)))
		if !bytes.Equal(a, b) {
			t.Fatalf("shard %s differs between 1 and 4 workers", filepath.Base(p))
		}
	}
	if len(res4.TrainShards) != len(res1.TrainShards) {
		t.Fatal("shard count depends on workers")
	}
	_ = out1
}

// TestTokenizeSplitsByTokens: validation is the fraction of tokens, not of
// documents. One file gives its last tokens (nanoGPT's split of one
// input.txt); two files at 1% no longer give 50%; many equal documents
// split at document boundaries only.
func TestTokenizeSplitsByTokens(t *testing.T) {
	in := t.TempDir()
	tok := mustTokenizer(t, "byte")
	one := writeFile(t, filepath.Join(in, "input.txt"), strings.Repeat("To be, or not to be. ", 500))
	res, err := TokenizeFiles(TokenizeOptions{Inputs: []string{one}, Tokenizer: tok, OutDir: t.TempDir(), ValFraction: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	all := encodeDocs(tok, []string{strings.Repeat("To be, or not to be. ", 500)})
	cut := len(all) - 1050 // round(0.1 * 10501)
	if got := readShards(t, res.ValShards); !reflect.DeepEqual(got, all[cut:]) {
		t.Fatalf("val holds %d tokens, want the last %d of the file", len(got), len(all)-cut)
	}
	if got := readShards(t, res.TrainShards); !reflect.DeepEqual(got, all[:cut]) {
		t.Fatalf("train holds %d tokens, want the first %d", len(got), cut)
	}
	if res.ValCut == nil || res.ValCut.Source != one || !strings.Contains(res.SplitSummary(), "the last 1050 tokens of input.txt") {
		t.Errorf("split summary %q, cut %+v", res.SplitSummary(), res.ValCut)
	}

	a := writeFile(t, filepath.Join(in, "a.txt"), strings.Repeat("first ", 1000))
	b := writeFile(t, filepath.Join(in, "b.txt"), strings.Repeat("second ", 1000))
	res, err = TokenizeFiles(TokenizeOptions{Inputs: []string{a, b}, Tokenizer: tok, OutDir: t.TempDir(), ValFraction: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	total := res.TrainTokens + res.ValTokens
	if frac := float64(res.ValTokens) / float64(total); frac < 0.0099 || frac > 0.0101 {
		t.Errorf("two files at --val-fraction 0.01: %.4f of the tokens in validation", frac)
	}
	if got := tok.Decode(readShards(t, res.ValShards)); !strings.HasSuffix(got, "second "+EOTText) {
		t.Errorf("val holds %q, want the end of b.txt", got)
	}

	var docs []string
	for i := range 100 {
		docs = append(docs, writeFile(t, filepath.Join(in, fmt.Sprintf("d%03d.txt", i)), fmt.Sprintf("doc %03d", i)))
	}
	res, err = TokenizeFiles(TokenizeOptions{Inputs: docs, Tokenizer: tok, OutDir: t.TempDir(), ValFraction: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if res.ValDocuments != 10 || res.ValCut != nil || res.ValTokens != 80 {
		t.Errorf("100 equal documents at 0.1: %d val documents (%d tokens), cut %+v; want 10 whole ones", res.ValDocuments, res.ValTokens, res.ValCut)
	}
	// A document's first token stays in train.
	tinyDoc := writeFile(t, filepath.Join(in, "tiny.txt"), "x")
	res, err = TokenizeFiles(TokenizeOptions{Inputs: []string{tinyDoc}, Tokenizer: tok, OutDir: t.TempDir(), ValFraction: 0.5})
	if err != nil || res.TrainTokens != 1 || res.ValTokens != 1 {
		t.Fatalf("one tiny document at 0.5: %+v %v", res, err)
	}
}

func TestTokenizeGzipJSONL(t *testing.T) {
	in := t.TempDir()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(`{"text":"alpha"}` + "\n" + `{"text":"beta"}`)) // no final newline
	zw.Close()
	p := filepath.Join(in, "d.jsonl.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	tok := mustTokenizer(t, "byte")
	res, err := TokenizeFiles(TokenizeOptions{Inputs: []string{p}, Tokenizer: tok, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Decode(readShards(t, res.TrainShards)); got != "alpha"+EOTText+"beta"+EOTText {
		t.Fatalf("got %q", got)
	}
}

func TestTokenizeBadInput(t *testing.T) {
	in := t.TempDir()
	tok := mustTokenizer(t, "byte")
	good := writeFile(t, filepath.Join(in, "good.txt"), strings.Repeat("x", 1000))
	bad := writeFile(t, filepath.Join(in, "bad.jsonl"), "{\"text\":\"ok\"}\n{\"text\":\"ok\"}\n{\"text\": oops}\n")
	missing := writeFile(t, filepath.Join(in, "missing.jsonl"), "{\"text\":\"ok\"}\n{\"content\":\"x\"}\n")
	notString := writeFile(t, filepath.Join(in, "num.jsonl"), "{\"text\":42}\n")
	empty := writeFile(t, filepath.Join(in, "empty.txt"), "")
	for _, tc := range []struct {
		name   string
		inputs []string
		opts   func(*TokenizeOptions)
		want   []string
	}{
		{"bad_json_line", []string{good, bad}, nil, []string{bad + ":3", "malformed JSON"}},
		{"missing_field", []string{missing}, nil, []string{missing + ":2", `field "text" missing`}},
		{"not_string", []string{notString}, nil, []string{notString + ":1", "not a string"}},
		{"no_docs", []string{empty}, nil, []string{"no documents"}},
		{"no_inputs", nil, nil, []string{"no input"}},
		{"nonexistent", []string{filepath.Join(in, "nope.txt")}, nil, []string{"nope.txt"}},
		{"directory", []string{in}, nil, []string{"directory"}},
		{"bad_fraction", []string{good}, func(o *TokenizeOptions) { o.ValFraction = 0.9 }, []string{"0.9"}},
		{"bad_format", []string{good}, func(o *TokenizeOptions) { o.Format = "csv" }, []string{"csv"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			opts := TokenizeOptions{Inputs: tc.inputs, Tokenizer: tok, OutDir: out, ShardTokens: 100}
			if tc.opts != nil {
				tc.opts(&opts)
			}
			_, err := TokenizeFiles(opts)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			// A failed run leaves no shards (good.txt alone fills 10).
			if ents, _ := os.ReadDir(out); len(ents) != 0 {
				t.Errorf("failed run left %d files", len(ents))
			}
		})
	}
}

// TestTokenizeCutsLargeText: one large text file is tokenized on every
// core in pieces cut at paragraph breaks, to the ids of the whole text.
func TestTokenizeCutsLargeText(t *testing.T) {
	defer func(n int) { chunkBytes = n }(chunkBytes)
	chunkBytes = 2000
	var sb strings.Builder
	srcs, _ := filepath.Glob(filepath.Join(goRoot(t), "src", "strings", "*.go"))
	for _, p := range srcs {
		b, _ := os.ReadFile(p)
		sb.Write(b)
		sb.WriteString("\n\n  \n\n\tindented\n\n\n\nx\n\n<|endoftext|>\n\n")
	}
	text := sb.String()
	in := writeFile(t, filepath.Join(t.TempDir(), "input.txt"), text)
	for _, name := range []string{"gpt2", "byte"} {
		tok := mustTokenizer(t, name)
		if pieces := cutParagraphs(text); len(pieces) < 10 || strings.Join(pieces, "") != text {
			t.Fatalf("%d pieces", len(pieces))
		}
		for _, special := range []string{SpecialText, SpecialMap} {
			res, err := TokenizeFiles(TokenizeOptions{Inputs: []string{in}, Tokenizer: tok, OutDir: t.TempDir(), SpecialTokens: special, ValFraction: 0.1})
			if err != nil {
				t.Fatal(err)
			}
			enc, _ := WithSpecialTokens(tok, special)
			want := append(enc.Encode(text), tok.EOT())
			got := append(readShards(t, res.TrainShards), readShards(t, res.ValShards)...)
			if !reflect.DeepEqual(got, want) || res.Documents != 1 || res.Bytes != int64(len(text)) {
				t.Errorf("%s %s: %d tokens (%d documents, %d bytes), want the whole text's %d", name, special, len(got), res.Documents, res.Bytes, len(want))
			}
		}
	}
}
