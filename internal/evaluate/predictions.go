package evaluate

// `compact eval --predictions FILE`: one JSON line per row of the evaluated
// classify set, in order, with the row's label when it has one, the
// predicted label and the probability of every label. The file is written
// beside FILE under a temporary name and renamed when complete, so a failed
// evaluation leaves no partial file (and an existing FILE untouched).

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/data/examples"
)

// predictionWriter writes the prediction lines of one evaluation.
type predictionWriter struct {
	path  string
	tmp   *os.File
	w     *bufio.Writer
	set   []examples.Row // the evaluated rows, in order
	B     int
	names []string
	rows  int
}

// newPredictionWriter refuses a path that is one of the evaluated files
// (writing it would destroy the data) before creating anything.
func newPredictionWriter(path string, cfg config.Config, set []examples.Row) (*predictionWriter, error) {
	if st, err := os.Stat(path); err == nil {
		if st.IsDir() {
			return nil, config.Usagef("--predictions %s is a directory", path)
		}
		for _, globs := range [][]string{cfg.Data.Train, cfg.Data.Val} {
			files, _ := data.ExpandGlobs(globs)
			for _, f := range files {
				if fs, err := os.Stat(f); err == nil && os.SameFile(st, fs) {
					return nil, config.Usagef("--predictions %s is an input file of the evaluation; name another file", path)
				}
			}
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, config.Usagef("--predictions: %w", err)
	}
	return &predictionWriter{path: path, tmp: tmp, w: bufio.NewWriter(tmp), set: set,
		B: cfg.Train.MicroBatch, names: cfg.Finetune.Labels}, nil
}

// batch writes the rows of evaluation batch i; rows past the end of the set
// are the padding of the last batch.
func (p *predictionWriter) batch(i int, pred []int, probs [][]float64) error {
	for j := range probs {
		k := i*p.B + j
		if k >= len(p.set) {
			break
		}
		if err := p.row(k, pred[j], probs[j]); err != nil {
			return fmt.Errorf("--predictions %s: %w", p.path, err)
		}
	}
	return nil
}

func (p *predictionWriter) row(k, pred int, probs []float64) error {
	e := p.set[k]
	head := struct {
		Row       int    `json:"row"`
		File      string `json:"file"`
		Line      int    `json:"line"`
		Label     any    `json:"label,omitempty"`
		Predicted any    `json:"predicted"`
	}{Row: k, File: e.File, Line: e.Line, Predicted: labelName(p.names, pred)}
	if e.Label >= 0 {
		head.Label = labelName(p.names, int(e.Label))
	}
	js, err := json.Marshal(head)
	if err != nil {
		return err
	}
	// probabilities is an object in id order (a Go map would sort "10"
	// before "2"), keyed by the label as the row writes it.
	p.w.Write(js[:len(js)-1])
	p.w.WriteString(`,"probabilities":{`)
	for j, v := range probs {
		key, _ := json.Marshal(fmt.Sprint(labelName(p.names, j)))
		val, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("row %d: probability %v: %w", k, v, err)
		}
		if j > 0 {
			p.w.WriteByte(',')
		}
		p.w.Write(key)
		p.w.WriteByte(':')
		p.w.Write(val)
	}
	_, err = p.w.WriteString("}}\n")
	p.rows++
	return err
}

// finish makes the file visible under its name, or removes it on failure.
func (p *predictionWriter) finish(failed error) error {
	err := failed
	if err == nil {
		err = p.w.Flush()
	}
	if err == nil {
		err = p.tmp.Sync()
	}
	if cerr := p.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(p.tmp.Name(), p.path)
	}
	if err != nil {
		os.Remove(p.tmp.Name())
	}
	if failed == nil && err != nil {
		return fmt.Errorf("--predictions %s: %w", p.path, err)
	}
	return err
}

// labelName is how predictions write class id i: its name, else the id.
func labelName(names []string, i int) any {
	if i < len(names) {
		return names[i]
	}
	return i
}
