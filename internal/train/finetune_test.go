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

// TestLabelsConfig: finetune.labels must fit the task and num_labels.
func TestLabelsConfig(t *testing.T) {
	for _, tc := range []struct {
		ft   FinetuneConfig
		want string
	}{
		{FinetuneConfig{Task: TaskCausal, Labels: []string{"a", "b"}}, "only for finetune.task=classify"},
		{FinetuneConfig{Task: TaskClassify, NumLabels: 3, Labels: []string{"a", "b"}}, "names 2 classes, finetune.num_labels = 3"},
		{FinetuneConfig{Task: TaskClassify, NumLabels: 2, Labels: []string{"a", "a"}}, `"a" appears twice`},
	} {
		if err := checkLabels(tc.ft); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.ft, err, tc.want)
		}
	}
	if err := checkLabels(FinetuneConfig{Task: TaskClassify, NumLabels: 2, Labels: []string{"a", "b"}}); err != nil {
		t.Error(err)
	}
}
