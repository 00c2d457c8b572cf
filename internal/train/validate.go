package train

// One evaluation pass, batch by batch, with the classifier's per-row
// probabilities handed to a callback (predictions.go), so the accuracy eval
// reports and the predictions it writes come from the same forward passes.

import (
	"fmt"

	"github.com/compact-llm/compact/internal/model"
)

// evaluateModel returns the mean loss over the first limit batches of src
// and, for a classifier, the accuracy (else -1).
func evaluateModel(m *model.Model, src batchSource, B, T, limit int) (loss, acc float64, err error) {
	s, err := evaluateRows(m, src, B, T, limit, nil)
	if err != nil {
		return 0, 0, err
	}
	if s.n == 0 {
		return 0, 0, fmt.Errorf("evaluation: the validation set has no target")
	}
	loss, acc = s.loss(), -1
	if m.NumLabels() > 0 {
		acc = s.accuracy()
	}
	return loss, acc, nil
}

// evalSums adds up one evaluation: summed loss over n targets, correct of
// them predicted (classifiers).
type evalSums struct {
	sum        float64
	n, correct int
}

func (s evalSums) loss() float64     { return s.sum / float64(s.n) }
func (s evalSums) accuracy() float64 { return float64(s.correct) / float64(s.n) }

// evaluateRows runs the first limit batches of src; for a classifier,
// onBatch (if set) gets batch i's predicted labels and label probabilities,
// one row per sequence.
func evaluateRows(m *model.Model, src batchSource, B, T, limit int, onBatch func(i int, pred []int, probs [][]float64) error) (evalSums, error) {
	src.Reset()
	var s evalSums
	for i := 0; i < src.evalBatches(limit); i++ {
		in, tg, err := src.Next()
		if err != nil {
			return s, err
		}
		if err := m.SetBatch(in, tg, B, T); err != nil {
			return s, err
		}
		l, err := m.Forward(false, 0)
		if err != nil {
			return s, err
		}
		s.sum += l
		pred := m.Predictions()
		for j, v := range tg {
			if v < 0 {
				continue
			}
			s.n++
			if pred != nil && pred[j/T] == int(v) {
				s.correct++
			}
		}
		if onBatch != nil && m.NumLabels() > 0 {
			probs := m.Probabilities()
			if len(probs) != B {
				return s, fmt.Errorf("evaluation: %d probability rows for a batch of %d", len(probs), B)
			}
			if err := onBatch(i, pred, probs); err != nil {
				return s, err
			}
		}
	}
	return s, nil
}
