package config

import (
	"strings"
	"testing"
)

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
	p := writeConfig(t, "model:\n  num_layers: 3\n")
	if _, err := LoadFinetune(b, p, nil); err == nil || !strings.Contains(err.Error(), "model.num_layers") {
		t.Fatalf("model key in the file: %v", err)
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
