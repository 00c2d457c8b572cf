package examples

// Classify labels: a JSONL row's "label" is an integer id or a string name.
// Names map to ids through finetune.labels (id order), which a run takes, in
// this order of precedence, from the key itself, from a classifier base's
// id2label, or from data.train: its distinct string labels sorted bytewise
// (sorted rather than by first appearance, so shuffling or splitting the
// file never renumbers the classes). The names are written to config.json
// as id2label/label2id and read back from there by eval and by fine-tunes
// of the classifier, so every command numbers the classes the same way.

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
)

// labelKind remembers the first labelled row of a set, so that a set mixing
// integer and string labels is refused naming both rows.
type labelKind struct {
	where    string // file:line of the first label
	isString bool
}

// parseLabel returns the class id of one row's raw label. names are the
// class names (nil: integer labels only); an integer is accepted as an id
// either way, so integer-labelled sets keep working with a named classifier.
func parseLabel(raw json.RawMessage, where string, names []string, numLabels int, kind *labelKind) (int32, error) {
	var s string
	isString := json.Unmarshal(raw, &s) == nil
	if kind.where == "" {
		kind.where, kind.isString = where, isString
	} else if kind.isString != isString {
		first, now := "an integer", "a string"
		if kind.isString {
			first, now = now, first
		}
		return 0, fmt.Errorf("%s: label %s is %s, but %s has %s label: use one kind in a set", where, raw, now, kind.where, first)
	}
	if isString {
		if len(names) == 0 {
			return 0, fmt.Errorf("%s: label %s is a string, but the classifier has no label names (set finetune.labels, or use integer labels)", where, raw)
		}
		i := slices.Index(names, s)
		if i < 0 {
			return 0, fmt.Errorf("%s: label %s is not one of the classifier's labels (%s)", where, raw, strings.Join(names, ", "))
		}
		return int32(i), nil
	}
	var label float64
	if err := json.Unmarshal(raw, &label); err != nil || label != math.Trunc(label) {
		return 0, fmt.Errorf("%s: label %s is not an integer or a string", where, raw)
	}
	if numLabels <= 0 { // the kind only (LabelNames): the range is checked with the run's num_labels
		return 0, nil
	}
	// Compared as a float: int(1e19) overflows and would pass the check.
	if label < 0 || label >= float64(numLabels) {
		return 0, fmt.Errorf("%s: label %s is outside [0, finetune.num_labels=%d)", where, raw, numLabels)
	}
	return int32(label), nil
}

// LabelNames returns the sorted distinct string labels of the classify
// files, or nil when their labels are integers. Rows are otherwise checked,
// and broken or unlabelled ones reported, when the examples are read.
func LabelNames(paths []string) ([]string, error) {
	seen := map[string]bool{}
	var kind labelKind
	err := readJSONL(paths, func(file string, line int, raw []byte) error {
		var r struct {
			Label *json.RawMessage `json:"label"`
		}
		if json.Unmarshal(raw, &r) != nil || r.Label == nil {
			return nil // reading the examples reports the row
		}
		where := fmt.Sprintf("%s:%d", file, line)
		var s string
		if json.Unmarshal(*r.Label, &s) != nil {
			_, err := parseLabel(*r.Label, where, nil, 0, &kind)
			return err
		}
		if s == "" {
			return fmt.Errorf("%s: label \"\": a label name must not be empty", where)
		}
		if _, err := parseLabel(*r.Label, where, []string{s}, 0, &kind); err != nil {
			return err
		}
		seen[s] = true
		return nil
	})
	if err != nil || len(seen) == 0 {
		return nil, err
	}
	names := make([]string, 0, len(seen))
	for s := range seen {
		names = append(names, s)
	}
	slices.Sort(names)
	return names, nil
}
