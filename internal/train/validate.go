package train

// One validation pass, batch by batch: the training loop's val_loss and
// `compact eval` (internal/evaluate), which also hands a classifier's
// per-row probabilities to a callback, so the accuracy eval reports and the
// predictions it writes come from the same forward passes.

import (
	"fmt"

	"github.com/compact-llm/compact/internal/model"
)

// Validate returns the mean loss over the first limit batches of src and,
// for a classifier, the accuracy (else -1).
func Validate(m *model.Model, src Batches, B, T, limit int) (loss, acc float64, err error) {
	s, err := ValidateRows(m, src, B, T, limit, nil)
	if err != nil {
		return 0, 0, err
	}
	if s.N == 0 {
		return 0, 0, fmt.Errorf("evaluation: the validation set has no target")
	}
	loss, acc = s.Loss(), -1
	if m.NumLabels() > 0 {
		acc = s.Accuracy()
	}
	return loss, acc, nil
}

// ValidationSums adds up one evaluation: summed loss over N targets,
// Correct of them predicted (classifiers).
type ValidationSums struct {
	Sum        float64
	N, Correct int
}

// Loss is the mean loss per target.
func (s ValidationSums) Loss() float64 { return s.Sum / float64(s.N) }

// Accuracy is the fraction of targets predicted.
func (s ValidationSums) Accuracy() float64 { return float64(s.Correct) / float64(s.N) }

// ValidateRows runs the first limit batches of src; for a classifier,
// onBatch (if set) gets batch i's predicted labels and label probabilities,
// one row per sequence.
func ValidateRows(m *model.Model, src Batches, B, T, limit int, onBatch func(i int, pred []int, probs [][]float64) error) (ValidationSums, error) {
	src.Reset()
	var s ValidationSums
	for i := 0; i < src.EvalBatches(limit); i++ {
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
		s.Sum += l
		pred := m.Predictions()
		for j, v := range tg {
			if v < 0 {
				continue
			}
			s.N++
			if pred != nil && pred[j/T] == int(v) {
				s.Correct++
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
