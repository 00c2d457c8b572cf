// Fuzz target for the JSONL readers of the completion and classify tasks:
// any file is refused with an error naming it (and a line) or read into
// examples that fit a row, never a panic.

package examples

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/model"
)

func FuzzExamples(f *testing.F) {
	f.Add([]byte(`{"prompt":"2+2=","completion":"4"}` + "\n" + `{"prompt":"","completion":"x"}` + "\n"))
	f.Add([]byte(`{"text":"good","label":1}` + "\n\n" + `{"text":"bad","label":0}`))
	f.Add([]byte(`{"text":"good","label":"pos"}` + "\n" + `{"text":"bad","label":"neg"}` + "\n"))
	f.Add([]byte("\ufeff" + `{"text":"x","label":1e19}`))
	f.Add([]byte(`{"text":"x","label":1}` + "\n" + `{"text":"y","label":"pos"}`))
	f.Add([]byte(`{"prompt":"a very long prompt that fills the row","completion":""}`))
	f.Add([]byte("not json\n"))
	tok, err := data.NewTokenizer("byte")
	if err != nil {
		f.Fatal(err)
	}
	const T = 16
	path := filepath.Join(f.TempDir(), "set.jsonl")
	f.Fuzz(func(t *testing.T, raw []byte) {
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		named := func(err error) {
			if err != nil && !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
		}
		fits := func(ex []Example, labels int) {
			for _, e := range ex {
				if len(e.in) == 0 || len(e.in) > T || len(e.in) != len(e.tg) {
					t.Fatalf("example of %d inputs and %d targets for T = %d", len(e.in), len(e.tg), T)
				}
				for _, v := range e.tg {
					if v >= int32(max(labels, tok.VocabSize())) || v < -1 && v != model.ReadOnlyTarget {
						t.Fatalf("target %d", v)
					}
				}
			}
		}
		ex, _, err := Completion([]string{path}, tok, T)
		named(err)
		fits(ex, 0)
		names, err := LabelNames([]string{path})
		named(err)
		for _, unlabelled := range []bool{false, true} {
			ex, err := Classify([]string{path}, tok, T, 3, names, unlabelled)
			named(err)
			fits(ex, 3)
		}
	})
}
