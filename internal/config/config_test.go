package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "run.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigErrorsNameTheCulprit(t *testing.T) {
	cases := []struct {
		name, yaml string
		sets       []string
		want       string
	}{
		{"bad yaml", "model:\n  hidden_size: [1,\n", nil, "run.yaml"},
		{"unknown key", "train:\n  lrate: 0.1\n", nil, "train.lrate"},
		{"unknown section", "optimiser:\n  lr: 0.1\n", nil, "optimiser"},
		{"wrong type", "train:\n  lr: fast\n", nil, "train.lr"},
		{"heads", "model:\n  num_heads: 7\n", nil, "model.num_heads"},
		{"kv heads", "model:\n  num_kv_heads: 3\n", nil, "model.num_kv_heads"},
		{"rank > width", "compact:\n  rank: 4096\n", nil, "compact.rank"},
		{"bad layer", "compact:\n  layers: [q, o, out]\n", nil, "compact.layers"},
		{"o_proj_scale with o compressed", "compact:\n  layers: [q, o]\n  o_proj_scale: 0.5\n", nil, "compact.o_proj_scale"},
		{"missing data", "data:\n  train: [/nonexistent/*.bin]\n  val: [/nonexistent/v.bin]\n", nil, "data.train"},
		{"seq > max", "train:\n  seq_len: 512\n", nil, "train.seq_len"},
		{"recompute", "train:\n  recompute: sometimes\n", nil, "train.recompute"},
		{"weights", "train:\n  weights: fp16\n", nil, "train.weights"},
		{"optimizer state", "", []string{"train.optimizer_state=int4"}, "train.optimizer_state"},
		{"head tied", "", []string{"compact.head=true", "model.tie_embeddings=true"}, "model.tie_embeddings"},
		{"set unknown", "", []string{"train.nope=1"}, "train.nope"},
		{"set malformed", "", []string{"train.lr"}, "train.lr"},
		{"set wrong type", "", []string{"model.num_layers=many"}, "model.num_layers"},
	}
	for _, c := range cases {
		file := ""
		if c.yaml != "" {
			file = writeConfig(t, c.yaml)
		}
		_, err := Load(file, c.sets)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !IsUsage(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q (usage %v) does not name %q", c.name, err, IsUsage(err), c.want)
		}
	}
	if _, err := Load("/nonexistent/run.yaml", nil); err == nil || !strings.Contains(err.Error(), "/nonexistent/run.yaml") {
		t.Errorf("missing config file: %v", err)
	}
}

func TestConfigLayering(t *testing.T) {
	file := writeConfig(t, "train:\n  lr: 0.01\n  steps: 7\ncompact:\n  layers: [q, v]\n")
	t.Setenv("COMPACT_TRAIN_STEPS", "9")
	t.Setenv("COMPACT_MODEL_NUM_LAYERS", "3")
	cfg, err := Load(file, []string{"train.lr=0.02", "compact.layers=gate,up"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Train.LR != 0.02 || cfg.Train.Steps != 9 || cfg.Model.Layers != 3 {
		t.Errorf("lr %v steps %v layers %v: want --set over env over file", cfg.Train.LR, cfg.Train.Steps, cfg.Model.Layers)
	}
	if strings.Join(cfg.Compact.Layers, ",") != "gate,up" {
		t.Errorf("compact.layers = %v", cfg.Compact.Layers)
	}
	if cfg.Train.Beta2 != 0.999 || cfg.Compact.UpdateGap != 50 {
		t.Errorf("defaults lost: %+v", cfg.Train)
	}
}

func TestShippedConfigsLoad(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	if len(files) < 5 {
		t.Fatalf("configs/: %d files", len(files))
	}
	// Fine-tuning configs name the user's data; point them at stand-ins and
	// load them as finetune does, with the model from a base.
	dir := t.TempDir()
	jl := filepath.Join(dir, "d.jsonl")
	os.WriteFile(jl, []byte("{}\n"), 0o644)
	b := Base{Dir: dir, Model: Default().Model}
	for _, f := range files {
		var err error
		if strings.Contains(filepath.Base(f), "finetune-") {
			sets := []string{"data.train=" + jl}
			if strings.Contains(f, "causal") {
				sets = append(sets, "data.val="+jl)
			}
			_, err = LoadFinetune(b, f, sets)
		} else {
			_, err = Load(f, nil)
		}
		if err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestConfigTokenizerPaths(t *testing.T) {
	dir := "../data/testdata/hf/llama2"
	for _, tok := range []string{dir, dir + "/tokenizer.json"} {
		if _, err := Load("", []string{"data.tokenizer=" + tok}); err != nil {
			t.Errorf("data.tokenizer=%s: %v", tok, err)
		}
	}
	for _, bad := range []string{"sentencepiece", t.TempDir(), "/nonexistent/tokenizer.json"} {
		if _, err := Load("", []string{"data.tokenizer=" + bad}); err == nil || !strings.Contains(err.Error(), "data.tokenizer") {
			t.Errorf("data.tokenizer=%s: %v", bad, err)
		}
	}
}

// TestConfigErrorsBlameTheirSource: a bad value from --set or COMPACT_* is
// not reported as an error in the YAML file, unknown keys get the nearest
// key suggested, and a misspelt COMPACT_* variable is refused.
func TestConfigErrorsBlameTheirSource(t *testing.T) {
	file := writeConfig(t, "train:\n  lr: 0.01\n")
	cases := []struct {
		name    string
		env     [2]string
		sets    []string
		want    []string
		notWant string
	}{
		{"set wrong type", [2]string{}, []string{"train.lr=fast"}, []string{"--set train.lr=fast", "train.lr"}, "run.yaml"},
		{"env wrong type", [2]string{"COMPACT_TRAIN_STEPS", "many"}, nil, []string{"environment COMPACT_TRAIN_STEPS=many", "train.steps"}, "run.yaml"},
		{"set impossible", [2]string{}, []string{"model.num_heads=7"}, []string{"--set model.num_heads=7", "model.num_heads"}, "run.yaml"},
		{"env impossible", [2]string{"COMPACT_TRAIN_LR", "-1"}, nil, []string{"environment COMPACT_TRAIN_LR=-1", "train.lr"}, "run.yaml"},
		{"env misspelt", [2]string{"COMPACT_TRAIN_LRR", "0.1"}, nil, []string{"COMPACT_TRAIN_LRR", "did you mean COMPACT_TRAIN_LR?"}, "known keys"},
		{"set misspelt", [2]string{}, []string{"train.lrr=0.1"}, []string{"--set train.lrr", "did you mean train.lr?"}, "train.seq_len"},
		{"set wrong section", [2]string{}, []string{"model.lr=0.1"}, []string{"did you mean train.lr?"}, "train.seq_len"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.env[0] != "" {
				t.Setenv(c.env[0], c.env[1])
			}
			_, err := Load(file, c.sets)
			if err == nil || !IsUsage(err) {
				t.Fatalf("accepted or not a usage error: %v", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), c.notWant) {
				t.Errorf("error %q blames %q", err, c.notWant)
			}
		})
	}
	// The file's own errors still name the file and key, and suggest.
	bad := writeConfig(t, "train:\n  lrate: 0.1\n  lr: fast\n")
	_, err := Load(bad, nil)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "did you mean train.lr?") {
		t.Errorf("unknown key in file: %v", err)
	}
	if len(strings.Split(err.Error(), ",")) > 3 {
		t.Errorf("unknown key error lists keys instead of suggesting one: %v", err)
	}
	// Variables that are not config keys stay allowed.
	t.Setenv("COMPACT_CACHE", t.TempDir())
	t.Setenv("COMPACT_FAULT_KILL_CHECKPOINT", "") // a test hook (internal/checkpoint/fault.go)
	if _, err := Load(file, nil); err != nil {
		t.Errorf("COMPACT_CACHE / fault hook refused: %v", err)
	}
}

func TestSuggestKey(t *testing.T) {
	known := Keys()
	for bad, want := range map[string]string{"train.lrr": "train.lr", "model.hiden_size": "model.hidden_size",
		"train.microbatch": "train.micro_batch", "compact.rnk": "compact.rank", "model.lr": "train.lr"} {
		if got := suggestKey(bad, known); !strings.Contains(got, "did you mean "+want+"?") {
			t.Errorf("suggestKey(%s) = %q, want %s", bad, got, want)
		}
	}
	if got := suggestKey("zzz.qqqqqqq", known); strings.Contains(got, "did you mean") {
		t.Errorf("far-off key got a suggestion: %q", got)
	}
}
