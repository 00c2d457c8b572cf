package examples

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
		names, err := LabelNames([]string{p})
		if err != nil || !slices.Equal(names, []string{"neg", "pos"}) {
			t.Errorf("%s: names %v %v, want [neg pos]", p, names, err)
		}
	}
	ints := writeFile(t, "i.jsonl", `{"text":"x","label":1}`+"\n"+`{"text":"y","label":0}`)
	if names, err := LabelNames([]string{ints}); err != nil || names != nil {
		t.Errorf("integer labels: names %v %v, want none", names, err)
	}
	mixed := writeFile(t, "m.jsonl", `{"text":"x","label":1}`+"\n"+`{"text":"y","label":"pos"}`)
	if _, err := LabelNames([]string{mixed}); err == nil || !strings.Contains(err.Error(), mixed+":2: label \"pos\" is a string, but "+mixed+":1 has an integer label") {
		t.Errorf("mixed labels: %v", err)
	}
	empty := writeFile(t, "e.jsonl", `{"text":"x","label":""}`)
	if _, err := LabelNames([]string{empty}); err == nil || !strings.Contains(err.Error(), empty+":1:") {
		t.Errorf("empty label name: %v", err)
	}

	// Reading: names and integer ids map to the same classes.
	tok, _ := data.NewTokenizer("byte")
	ex, err := Classify([]string{a}, tok, 8, 2, []string{"neg", "pos"}, false)
	if err != nil || ex[0].label != 1 || ex[1].label != 0 || ex[0].tg[len(ex[0].tg)-1] != 1 {
		t.Fatalf("examples %+v %v", ex, err)
	}
	if _, err := Classify([]string{a}, tok, 8, 2, []string{"neg", "neutral"}, false); err == nil || !strings.Contains(err.Error(), a+":1: label \"pos\" is not one of the classifier's labels (neg, neutral)") {
		t.Errorf("unknown name: %v", err)
	}
	ex, err = Classify([]string{ints}, tok, 8, 2, []string{"neg", "pos"}, false)
	if err != nil || ex[0].label != 1 {
		t.Errorf("integer ids with a named classifier: %+v %v", ex, err)
	}
	// A row without a label only with unlabelled, read at its last token.
	nolabel := writeFile(t, "n.jsonl", `{"text":"abc"}`)
	if _, err := Classify([]string{nolabel}, tok, 8, 2, nil, false); err == nil || !strings.Contains(err.Error(), nolabel+":1:") {
		t.Errorf("missing label: %v", err)
	}
	ex, err = Classify([]string{nolabel}, tok, 8, 2, nil, true)
	if err != nil || ex[0].label != -1 || !slices.Equal(ex[0].tg, []int32{-1, -1, model.ReadOnlyTarget}) {
		t.Errorf("unlabelled row: %+v %v", ex, err)
	}
}
