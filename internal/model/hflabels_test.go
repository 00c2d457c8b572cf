package model

import (
	"slices"
	"testing"
)

// TestID2LabelRoundTrip: names written by SetLabels are read back in id
// order; the generic LABEL_i mean no names; a broken id2label is an error.
func TestID2LabelRoundTrip(t *testing.T) {
	h := HFConfig{NumLabels: 3}
	h.SetLabels([]string{"b", "a", "c"})
	if names, err := h.LabelNames(); err != nil || !slices.Equal(names, []string{"b", "a", "c"}) || h.Label2ID["a"] != 1 {
		t.Errorf("round trip: %v %v (label2id %v)", names, err, h.Label2ID)
	}
	generic := HFConfig{NumLabels: 2, ID2Label: map[string]string{"0": "LABEL_0", "1": "LABEL_1"}}
	if names, err := generic.LabelNames(); err != nil || names != nil {
		t.Errorf("generic names: %v %v, want none", names, err)
	}
	for _, bad := range []map[string]string{
		{"0": "a", "2": "b"},
		{"0": "a", "1": "a"},
		{"x": "a", "1": "b"},
	} {
		if _, err := (HFConfig{ID2Label: bad}).LabelNames(); err == nil {
			t.Errorf("id2label %v accepted", bad)
		}
	}
}
