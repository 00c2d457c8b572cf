package checkpoint

// The tokenizer a checkpoint carries, so that transformers loads it with
// AutoTokenizer.from_pretrained as it loads the model: tokenizer.json (the
// run's tokenizer, data.HFTokenizerJSON) and tokenizer_config.json; a
// tokenizer.json run copies the tokenizer_config.json and
// special_tokens_map.json beside it (its chat template among them).

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/data"
)

// File is a file every checkpoint of a run holds besides the weights and
// state.
type File struct {
	Name string
	Data []byte
}

// TokenizerFiles are tok's files for the checkpoints of cfg's run.
func TokenizerFiles(tok data.Tokenizer, cfg config.Config) ([]File, error) {
	js, err := data.HFTokenizerJSON(tok)
	if err != nil {
		return nil, err
	}
	files := []File{{"tokenizer.json", js}}
	if hf, ok := tok.(interface{ Path() string }); ok {
		copied := false
		for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
			if b, err := os.ReadFile(filepath.Join(filepath.Dir(hf.Path()), name)); err == nil {
				files, copied = append(files, File{name, b}), copied || name == "tokenizer_config.json"
			}
		}
		if copied {
			return files, nil
		}
	}
	tc := map[string]any{"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": cfg.Model.MaxSeqLen,
		"eos_token": tok.Decode([]uint32{tok.EOT()}), "clean_up_tokenization_spaces": false}
	if b, ok := tok.(interface{ BOS() (uint32, bool) }); ok {
		if id, has := b.BOS(); has {
			tc["bos_token"] = tok.Decode([]uint32{id})
		}
	}
	if cfg.Finetune.Task == config.TaskClassify {
		tc["pad_token"] = tc["eos_token"] // the classifier pads with EOT (internal/data/examples)
	}
	b, _ := json.MarshalIndent(tc, "", "  ")
	return append(files, File{"tokenizer_config.json", append(b, '\n')}), nil
}
