package examples

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/data"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCompletionExamplesMaskPrompt: targets are -1 on prompt positions and
// the completion plus EOT are predicted.
func TestCompletionExamplesMaskPrompt(t *testing.T) {
	tok, _ := data.NewTokenizer("byte")
	p := writeFile(t, "c.jsonl", `{"prompt":"ab","completion":"cd"}`+"\n\n"+`{"prompt":"abcdefgh","completion":"x"}`+"\n")
	ex, dropped, err := Completion([]string{p}, tok, 4)
	if err != nil || dropped != 1 || len(ex) != 1 {
		t.Fatalf("examples %v dropped %d err %v", ex, dropped, err)
	}
	e := ex[0] // a b c d EOT -> in a b c d, tg (b) c d EOT, b masked
	want := []int32{-1, 'c', 'd', 256}
	for i := range want {
		if e.tg[i] != want[i] || e.in[i] != int32("abcd"[i]) {
			t.Fatalf("example %+v, want inputs abcd targets %v", e, want)
		}
	}
	src := NewSource(ex, 2, 6, 256, 1, false, true)
	in, tg, _ := src.Next()
	if in[4] != 256 || tg[4] != -1 || in[6] != 256 || tg[6] != -1 {
		t.Fatalf("padding rows: in %v tg %v", in, tg)
	}
}

func TestExampleErrorsNameFileAndLine(t *testing.T) {
	tok, _ := data.NewTokenizer("byte")
	for _, tc := range []struct{ body, want string }{
		{`{"text":"a","label":1}` + "\n" + `{"text":"b","label":5}`, "c.jsonl:2: label 5 is outside"},
		{`{"text":"a","label":"x"}`, "c.jsonl:1: label \"x\" is a string, but the classifier has no label names"},
		{`{"text":"a"`, "c.jsonl:1:"},
		{`{"label":1}`, "want fields"},
		// Labels beyond int64 used to wrap to a negative target.
		{`{"text":"a","label":1e19}`, "c.jsonl:1: label 1e19 is outside"},
		{`{"text":"a","label":1e300}`, "c.jsonl:1: label 1e300 is outside"},
		{`{"text":"a","label":9223372036854775808}`, "c.jsonl:1: label 9223372036854775808 is outside"},
	} {
		_, err := Classify([]string{writeFile(t, "c.jsonl", tc.body)}, tok, 8, 2, nil, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.body, err, tc.want)
		}
	}
}

// TestExampleSourceDeterministicResume: the same seed gives the same
// stream, and restoring a saved position continues it exactly.
func TestExampleSourceDeterministicResume(t *testing.T) {
	var ex []Example
	for i := 0; i < 7; i++ {
		ex = append(ex, Example{in: []int32{int32(i)}, tg: []int32{int32(i)}})
	}
	a := NewSource(ex, 3, 2, 99, 5, true, false)
	b := NewSource(ex, 3, 2, 99, 5, true, false)
	a.Next()
	st, _ := a.SaveState()
	b.RestoreState(st)
	for i := 0; i < 5; i++ {
		x, _, _ := a.Next()
		y, _, _ := b.Next()
		if len(x) != len(y) {
			t.Fatal("length")
		}
		for j := range x {
			if x[j] != y[j] {
				t.Fatalf("batch %d differs after restore: %v vs %v", i, x, y)
			}
		}
	}
	tr, va, err := Split(ex, 0.3, 1)
	if err != nil || len(va) != 2 || len(tr) != 5 {
		t.Fatalf("split: %d/%d %v", len(tr), len(va), err)
	}
}
