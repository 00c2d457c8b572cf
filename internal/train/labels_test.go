package train

import (
	"slices"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/model"
)

// TestLabelNames: string labels are numbered in sorted order whatever the
// row order, integer sets have no names, and mixed sets are refused naming
// both rows.
func TestLabelNames(t *testing.T) {
	a := writeFile(t, "a.jsonl", `{"text":"x","label":"pos"}`+"\n"+`{"text":"y","label":"neg"}`+"\n"+`{"text":"z","label":"pos"}`)
	b := writeFile(t, "b.jsonl", `{"text":"y","label":"neg"}`+"\n\n"+`{"text":"x","label":"pos"}`)
	for _, p := range []string{a, b} {
		names, err := scanLabelNames([]string{p})
		if err != nil || !slices.Equal(names, []string{"neg", "pos"}) {
			t.Errorf("%s: names %v %v, want [neg pos]", p, names, err)
		}
	}
	ints := writeFile(t, "i.jsonl", `{"text":"x","label":1}`+"\n"+`{"text":"y","label":0}`)
	if names, err := scanLabelNames([]string{ints}); err != nil || names != nil {
		t.Errorf("integer labels: names %v %v, want none", names, err)
	}
	mixed := writeFile(t, "m.jsonl", `{"text":"x","label":1}`+"\n"+`{"text":"y","label":"pos"}`)
	if _, err := scanLabelNames([]string{mixed}); err == nil || !strings.Contains(err.Error(), mixed+":2: label \"pos\" is a string, but "+mixed+":1 has an integer label") {
		t.Errorf("mixed labels: %v", err)
	}
	empty := writeFile(t, "e.jsonl", `{"text":"x","label":""}`)
	if _, err := scanLabelNames([]string{empty}); err == nil || !strings.Contains(err.Error(), empty+":1:") {
		t.Errorf("empty label name: %v", err)
	}

	// Reading: names and integer ids map to the same classes.
	tok, _ := data.NewTokenizer("byte")
	ex, err := classifyExamples([]string{a}, tok, 8, 2, []string{"neg", "pos"}, false)
	if err != nil || ex[0].label != 1 || ex[1].label != 0 || ex[0].tg[len(ex[0].tg)-1] != 1 {
		t.Fatalf("examples %+v %v", ex, err)
	}
	if _, err := classifyExamples([]string{a}, tok, 8, 2, []string{"neg", "neutral"}, false); err == nil || !strings.Contains(err.Error(), a+":1: label \"pos\" is not one of the classifier's labels (neg, neutral)") {
		t.Errorf("unknown name: %v", err)
	}
	ex, err = classifyExamples([]string{ints}, tok, 8, 2, []string{"neg", "pos"}, false)
	if err != nil || ex[0].label != 1 {
		t.Errorf("integer ids with a named classifier: %+v %v", ex, err)
	}
	// A row without a label only with unlabelled, read at its last token.
	nolabel := writeFile(t, "n.jsonl", `{"text":"abc"}`)
	if _, err := classifyExamples([]string{nolabel}, tok, 8, 2, nil, false); err == nil || !strings.Contains(err.Error(), nolabel+":1:") {
		t.Errorf("missing label: %v", err)
	}
	ex, err = classifyExamples([]string{nolabel}, tok, 8, 2, nil, true)
	if err != nil || ex[0].label != -1 || !slices.Equal(ex[0].tg, []int32{-1, -1, model.ReadOnlyTarget}) {
		t.Errorf("unlabelled row: %+v %v", ex, err)
	}
}

// TestID2LabelRoundTrip: names written by SetLabels are read back in id
// order; the generic LABEL_i mean no names; a broken id2label is an error.
func TestID2LabelRoundTrip(t *testing.T) {
	h := model.HFConfig{NumLabels: 3}
	h.SetLabels([]string{"b", "a", "c"})
	if names, err := h.LabelNames(); err != nil || !slices.Equal(names, []string{"b", "a", "c"}) || h.Label2ID["a"] != 1 {
		t.Errorf("round trip: %v %v (label2id %v)", names, err, h.Label2ID)
	}
	generic := model.HFConfig{NumLabels: 2, ID2Label: map[string]string{"0": "LABEL_0", "1": "LABEL_1"}}
	if names, err := generic.LabelNames(); err != nil || names != nil {
		t.Errorf("generic names: %v %v, want none", names, err)
	}
	for _, bad := range []map[string]string{
		{"0": "a", "2": "b"},
		{"0": "a", "1": "a"},
		{"x": "a", "1": "b"},
	} {
		if _, err := (model.HFConfig{ID2Label: bad}).LabelNames(); err == nil {
			t.Errorf("id2label %v accepted", bad)
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
