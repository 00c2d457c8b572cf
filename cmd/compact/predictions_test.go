package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var moods = []string{"positive", "negative", "neutral"}

// moodRow is a row of a string-labelled sentiment set.
func moodRow(i int) map[string]any {
	m := moods[i%3]
	return map[string]any{"text": fmt.Sprintf("review %d was %s", i, m), "label": m}
}

// prediction is one line of eval --predictions.
type prediction struct {
	Row           int             `json:"row"`
	File          string          `json:"file"`
	Line          int             `json:"line"`
	Label         *string         `json:"label"`
	Predicted     string          `json:"predicted"`
	Probabilities json.RawMessage `json:"probabilities"`
}

// probOrder decodes the probabilities object keeping its key order.
func probOrder(t *testing.T, raw json.RawMessage) (keys []string, vals []float64) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.Token() // {
	for dec.More() {
		k, _ := dec.Token()
		var v float64
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("probabilities %s: %v", raw, err)
		}
		keys, vals = append(keys, k.(string)), append(vals, v)
	}
	return keys, vals
}

// TestClassifyStringLabelsPredictions fine-tunes a classifier on string
// labels, checks config.json's id2label, writes predictions (one line per
// row, probabilities summing to 1, predicted = argmax, agreeing with the
// accuracy eval reports), resumes and fine-tunes the classifier further
// with the same numbering, and refuses unknown or mixed labels naming
// file:line.
func TestClassifyStringLabelsPredictions(t *testing.T) {
	train, val := shards(t)
	dir := t.TempDir()
	pre := filepath.Join(dir, "pre")
	if code, stderr := run(t, nil, append([]string{"pretrain", "--steps", "1", "--out", pre}, smallRun(train, val)...)...); code != 0 {
		t.Fatalf("pretrain: exit %d: %s", code, stderr)
	}
	cls := jsonl(t, filepath.Join(dir, "cls.jsonl"), 30, moodRow)
	args := []string{"--set", "finetune.task=classify", "--set", "data.train=" + cls, "--set", "finetune.val_fraction=0.2"}
	out := filepath.Join(dir, "cls")
	if code, stderr := run(t, nil, append(ftArgs(pre, out, "--steps", "6"), args...)...); code != 0 {
		t.Fatalf("finetune: exit %d: %s", code, stderr)
	}

	// Sorted names, num_labels from them (it was never set).
	want := []string{"negative", "neutral", "positive"}
	raw, err := os.ReadFile(filepath.Join(out, "checkpoints", "step-0000006", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var hf struct {
		NumLabels int               `json:"num_labels"`
		ID2Label  map[string]string `json:"id2label"`
		Label2ID  map[string]int    `json:"label2id"`
	}
	if err := json.Unmarshal(raw, &hf); err != nil {
		t.Fatal(err)
	}
	if hf.NumLabels != 3 || len(hf.ID2Label) != 3 || len(hf.Label2ID) != 3 {
		t.Fatalf("config.json labels: %s", raw)
	}
	for i, n := range want {
		if hf.ID2Label[fmt.Sprint(i)] != n || hf.Label2ID[n] != i {
			t.Fatalf("config.json id2label %v label2id %v, want ids in order %v", hf.ID2Label, hf.Label2ID, want)
		}
	}

	// An evaluation set with one unlabelled row (line 3) and a blank line.
	var sb strings.Builder
	for i := 0; i < 9; i++ {
		r := moodRow(i + 100)
		if i == 2 {
			delete(r, "label")
		}
		js, _ := json.Marshal(r)
		sb.Write(js)
		sb.WriteString("\n")
		if i == 5 {
			sb.WriteString("\n")
		}
	}
	evalSet := filepath.Join(dir, "eval.jsonl")
	os.WriteFile(evalSet, []byte(sb.String()), 0o644)
	predFile := filepath.Join(dir, "pred.jsonl")
	ev := evalJSON(t, "--checkpoint", out, "--data", evalSet, "--predictions", predFile)
	f, err := os.Open(predFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var preds []prediction
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var p prediction
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("prediction line %q: %v", sc.Text(), err)
		}
		preds = append(preds, p)
	}
	if len(preds) != 9 || int(ev["rows"].(float64)) != 9 {
		t.Fatalf("%d prediction lines, eval says %v rows; want one per row (9)", len(preds), ev["rows"])
	}
	labelled, correct := 0, 0
	for i, p := range preds {
		line := i + 1
		if i > 5 {
			line++ // the blank line
		}
		if p.Row != i || p.File != evalSet || p.Line != line {
			t.Errorf("prediction %d names row %d %s:%d, want %s:%d", i, p.Row, p.File, p.Line, evalSet, line)
		}
		keys, vals := probOrder(t, p.Probabilities)
		if !slices.Equal(keys, want) {
			t.Fatalf("probabilities keyed %v, want %v", keys, want)
		}
		sum, best := 0.0, 0
		for j, v := range vals {
			if v < 0 || v > 1 {
				t.Errorf("row %d: probability %v", i, v)
			}
			sum += v
			if v > vals[best] {
				best = j
			}
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Errorf("row %d: probabilities sum to %v", i, sum)
		}
		if p.Predicted != want[best] {
			t.Errorf("row %d: predicted %s, argmax %s (%v)", i, p.Predicted, want[best], vals)
		}
		if (p.Label == nil) != (i == 2) {
			t.Errorf("row %d: label %v; only row 2 has none", i, p.Label)
		}
		if p.Label != nil {
			if *p.Label != moods[(i+100)%3] {
				t.Errorf("row %d: label %s, the file says %s", i, *p.Label, moods[(i+100)%3])
			}
			labelled++
			if *p.Label == p.Predicted {
				correct++
			}
		}
	}
	if acc := ev["accuracy"].(float64); math.Abs(acc-float64(correct)/float64(labelled)) > 1e-12 {
		t.Errorf("eval accuracy %v, the predictions give %d/%d", acc, correct, labelled)
	}
	// The same accuracy from a plain eval of the labelled rows.
	lab := jsonl(t, filepath.Join(dir, "labelled.jsonl"), 9, func(i int) map[string]any { return moodRow(i + 100) })
	lines, _ := os.ReadFile(lab)
	kept := strings.SplitAfter(string(lines), "\n")
	os.WriteFile(lab, []byte(strings.Join(append(kept[:2:2], kept[3:]...), "")), 0o644)
	if acc := evalJSON(t, "--checkpoint", out, "--data", lab)["accuracy"].(float64); math.Abs(acc-ev["accuracy"].(float64)) > 1e-12 {
		t.Errorf("eval without --predictions: accuracy %v, with %v", acc, ev["accuracy"])
	}

	// The unlabelled row is read at its last token like a labelled one: its
	// probabilities are those of the same row with its label.
	full := jsonl(t, filepath.Join(dir, "full.jsonl"), 9, func(i int) map[string]any { return moodRow(i + 100) })
	evalJSON(t, "--checkpoint", out, "--data", full, "--predictions", filepath.Join(dir, "pred2.jsonl"))
	raw2, _ := os.ReadFile(filepath.Join(dir, "pred2.jsonl"))
	var p2 prediction
	json.Unmarshal([]byte(strings.Split(string(raw2), "\n")[2]), &p2)
	_, a := probOrder(t, preds[2].Probabilities)
	_, b := probOrder(t, p2.Probabilities)
	for j := range a {
		if math.Abs(a[j]-b[j]) > 1e-12 {
			t.Fatalf("unlabelled row 2: probabilities %v, with its label %v", a, b)
		}
	}

	// Resume re-reads the labels with the same numbering.
	if code, stderr := run(t, nil, append(ftArgs(pre, out, "--steps", "8", "--resume"), args...)...); code != 0 || !strings.Contains(stderr, "resumed from") {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	// A fine-tune of the classifier keeps its names, even on a set that
	// lacks one of them (its own sorted names would renumber the classes).
	sub := jsonl(t, filepath.Join(dir, "sub.jsonl"), 20, func(i int) map[string]any {
		return map[string]any{"text": fmt.Sprint("again ", i), "label": []string{"positive", "neutral"}[i%2]}
	})
	again := filepath.Join(dir, "again")
	if code, stderr := run(t, nil, ftArgs(out, again, "--steps", "3", "--set", "data.train="+sub, "--set", "finetune.val_fraction=0.2")...); code != 0 {
		t.Fatalf("finetune of the classifier: exit %d: %s", code, stderr)
	}
	raw3, _ := os.ReadFile(filepath.Join(again, "checkpoints", "step-0000003", "config.json"))
	var hf2 struct {
		ID2Label map[string]string `json:"id2label"`
	}
	json.Unmarshal(raw3, &hf2)
	for i, n := range want {
		if hf2.ID2Label[fmt.Sprint(i)] != n {
			t.Fatalf("fine-tuned classifier id2label %v, want the base's %v", hf2.ID2Label, want)
		}
	}

	// Bad input: exit 2 naming file:line, and nothing written.
	unknown := filepath.Join(dir, "unknown.jsonl")
	os.WriteFile(unknown, []byte(`{"text":"fine","label":"neutral"}`+"\n"+`{"text":"grr","label":"angry"}`+"\n"), 0o644)
	mixed := filepath.Join(dir, "mixed.jsonl")
	os.WriteFile(mixed, []byte(`{"text":"a","label":"positive"}`+"\n"+`{"text":"b","label":1}`+"\n"), 0o644)
	evalBefore, _ := os.ReadFile(evalSet)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "--checkpoint", out, "--data", unknown}, unknown + ":2: label \"angry\" is not one of"},
		{[]string{"eval", "--checkpoint", out, "--data", unknown, "--predictions", filepath.Join(dir, "p2.jsonl")}, unknown + ":2:"},
		{[]string{"eval", "--checkpoint", out, "--data", mixed}, mixed + ":2: label 1 is an integer, but " + mixed + ":1 has a string label"},
		{append(ftArgs(pre, filepath.Join(dir, "bad1"), "--steps", "2"), "--set", "finetune.task=classify", "--set", "data.train="+mixed, "--set", "finetune.val_fraction=0.2"), mixed + ":2:"},
		{append(ftArgs(out, filepath.Join(dir, "bad2"), "--steps", "2"), "--set", "data.train="+unknown, "--set", "finetune.val_fraction=0.2"), unknown + ":2:"},
		{[]string{"eval", "--checkpoint", out, "--data", evalSet, "--predictions", evalSet}, "is an input file"},
		{[]string{"eval", "--checkpoint", pre, "--predictions", filepath.Join(dir, "p3.jsonl")}, "not a classifier"},
		{append(ftArgs(pre, filepath.Join(dir, "bad3"), "--steps", "2"), "--set", "finetune.task=classify", "--set", "data.train="+cls, "--set", "finetune.val_fraction=0.2", "--set", "finetune.num_labels=2"), "3 string labels (negative, neutral, positive)"},
	} {
		code, stderr := run(t, nil, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, want 2 naming %q: %s", tc.args, code, tc.want, stderr)
		}
	}
	if after, _ := os.ReadFile(evalSet); !bytes.Equal(after, evalBefore) {
		t.Errorf("--predictions onto the input file changed it")
	}
	for _, p := range []string{"p2.jsonl", "p3.jsonl", "bad1", "bad2", "bad3"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			t.Errorf("a refused command left %s behind", p)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*tmp-*"))
	if len(left) > 0 {
		t.Errorf("temporary prediction files left behind: %v", left)
	}
}
