package train

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
	ex, dropped, err := completionExamples([]string{p}, tok, 4)
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
	src := newExampleSource(ex, 2, 6, 256, 1, false, true)
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
		_, err := classifyExamples([]string{writeFile(t, "c.jsonl", tc.body)}, tok, 8, 2, nil, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.body, err, tc.want)
		}
	}
}

// TestExampleSourceDeterministicResume: the same seed gives the same
// stream, and restoring a saved position continues it exactly.
func TestExampleSourceDeterministicResume(t *testing.T) {
	var ex []example
	for i := 0; i < 7; i++ {
		ex = append(ex, example{in: []int32{int32(i)}, tg: []int32{int32(i)}})
	}
	a := newExampleSource(ex, 3, 2, 99, 5, true, false)
	b := newExampleSource(ex, 3, 2, 99, 5, true, false)
	a.Next()
	st, _ := a.saveState()
	b.restoreState(st)
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
	tr, va, err := splitExamples(ex, 0.3, 1)
	if err != nil || len(va) != 2 || len(tr) != 5 {
		t.Fatalf("split: %d/%d %v", len(tr), len(va), err)
	}
}

// TestLoadFinetuneModelKeys: model.* keys must equal the base's.
func TestLoadFinetuneModelKeys(t *testing.T) {
	b := Base{Dir: "base", Model: Default().Model}
	b.Model.Hidden, b.Model.MaxSeqLen = 256, 128
	if _, err := LoadFinetune(b, "", []string{"model.hidden_size=512"}); err == nil || !strings.Contains(err.Error(), "model.hidden_size") {
		t.Fatalf("mismatching model key: %v", err)
	}
	cfg, err := LoadFinetune(b, "", []string{"model.hidden_size=256"})
	if err != nil || cfg.Model.Hidden != 256 || cfg.Train.SeqLen != 128 {
		t.Fatalf("matching key: %+v %v", cfg.Model, err)
	}
	p := writeFile(t, "f.yaml", "model:\n  num_layers: 3\n")
	if _, err := LoadFinetune(b, p, nil); err == nil || !strings.Contains(err.Error(), "model.num_layers") {
		t.Fatalf("model key in the file: %v", err)
	}
}

// Issue 21 item 8: the fine-tuning readers encode special-token text as
// data.special_tokens says: "map" (the default, what chat templates need)
// gives the special id, "text" reads it as text; a classifier refuses a
// mapped end-of-text inside a text, since that id pads its rows.
func TestFinetuneSpecialTokensEachWay(t *testing.T) {
	comp := writeFile(t, "c.jsonl", `{"prompt":"a<|endoftext|>b","completion":"c"}`+"\n")
	cls := writeFile(t, "k.jsonl", `{"text":"a<|endoftext|>b","label":1}`+"\n"+`{"text":"ok","label":0}`+"\n")
	tok, _ := data.NewTokenizer("byte")
	inputs := func(mode string) ([]int32, error) {
		cfg := Default()
		cfg.Data.Tokenizer, cfg.Data.SpecialTokens, cfg.Data.Train, cfg.Data.Val = "byte", mode, []string{comp}, []string{comp}
		cfg.Finetune.Task, cfg.Train.SeqLen, cfg.Train.MicroBatch = TaskCompletion, 32, 1
		tr, va, err := openExamples(cfg, tok, func(string, ...any) {})
		if err != nil {
			return nil, err
		}
		defer tr.Close()
		defer va.Close()
		in, _, err := tr.Next()
		return in, err
	}
	mapped, err := inputs(data.SpecialMap)
	if err != nil {
		t.Fatal(err)
	}
	if mapped[1] != 256 || mapped[2] != 'b' {
		t.Errorf("map: inputs %v, want a, EOT (256), b", mapped[:4])
	}
	asText, err := inputs(data.SpecialText)
	if err != nil {
		t.Fatal(err)
	}
	if asText[1] != '<' || asText[14] != 'b' {
		t.Errorf("text: inputs %v, want a, <|endoftext|> as bytes, b", asText[:16])
	}
	if Default().Data.SpecialTokens != data.SpecialMap {
		t.Errorf("data.special_tokens defaults to %q, want map", Default().Data.SpecialTokens)
	}
	for mode, want := range map[string]string{data.SpecialMap: "k.jsonl:1: the text holds the end-of-text token", data.SpecialText: ""} {
		cfg := Default()
		cfg.Data.Tokenizer, cfg.Data.SpecialTokens, cfg.Data.Train, cfg.Data.Val = "byte", mode, []string{cls}, []string{cls}
		cfg.Finetune.Task, cfg.Finetune.NumLabels, cfg.Train.SeqLen, cfg.Train.MicroBatch = TaskClassify, 2, 32, 1
		tr, va, err := openExamples(cfg, tok, func(string, ...any) {})
		if want == "" && err == nil {
			tr.Close()
			va.Close()
			continue
		}
		if err == nil || want == "" || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "data.special_tokens") {
			t.Errorf("classify, %s: error %v, want %q", mode, err, want)
		}
	}
}
