package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/data"
)

// Issue 21 item 8: the fine-tuning readers encode special-token text as
// data.special_tokens says: "map" (the default, what chat templates need)
// gives the special id, "text" reads it as text; a classifier refuses a
// mapped end-of-text inside a text, since that id pads its rows.
func TestFinetuneSpecialTokensEachWay(t *testing.T) {
	dir := t.TempDir()
	comp, cls := filepath.Join(dir, "c.jsonl"), filepath.Join(dir, "k.jsonl")
	for p, body := range map[string]string{comp: `{"prompt":"a<|endoftext|>b","completion":"c"}` + "\n",
		cls: `{"text":"a<|endoftext|>b","label":1}` + "\n" + `{"text":"ok","label":0}` + "\n"} {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tok, _ := data.NewTokenizer("byte")
	inputs := func(mode string) ([]int32, error) {
		cfg := config.Default()
		cfg.Data.Tokenizer, cfg.Data.SpecialTokens, cfg.Data.Train, cfg.Data.Val = "byte", mode, []string{comp}, []string{comp}
		cfg.Finetune.Task, cfg.Train.SeqLen, cfg.Train.MicroBatch = config.TaskCompletion, 32, 1
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
	if config.Default().Data.SpecialTokens != data.SpecialMap {
		t.Errorf("data.special_tokens defaults to %q, want map", config.Default().Data.SpecialTokens)
	}
	for mode, want := range map[string]string{data.SpecialMap: "k.jsonl:1: the text holds the end-of-text token", data.SpecialText: ""} {
		cfg := config.Default()
		cfg.Data.Tokenizer, cfg.Data.SpecialTokens, cfg.Data.Train, cfg.Data.Val = "byte", mode, []string{cls}, []string{cls}
		cfg.Finetune.Task, cfg.Finetune.NumLabels, cfg.Train.SeqLen, cfg.Train.MicroBatch = config.TaskClassify, 2, 32, 1
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
