package model

// Sequence classification, as transformers' LlamaForSequenceClassification:
// the final-norm hidden state of one position per sequence (the last token
// that is not padding), times score.weight (num_labels x C, no bias), then
// cross-entropy over the labels. Batches say which position carries the
// label by its target: every other target is -1, so the trainer's batches
// look like a causal LM's and the data code decides where "last" is.

import (
	"fmt"
	"math"

	"github.com/compact-llm/compact/internal/gpu"
)

// NumLabels is the number of classes of the classification head (0 for a
// causal LM).
func (m *Model) NumLabels() int { return m.Opts.NumLabels }

// ReadOnlyTarget marks the position the head reads in a sequence that has
// no label (predictions on unlabelled rows): its loss and gradient are zero.
const ReadOnlyTarget = -2

// setLabels turns classification targets (B*T, at most one >= 0 per
// sequence) into the one-hot selection and the per-sequence labels.
func (m *Model) setLabels(targets []int32, B, T int) error {
	N, L := B*T, m.Opts.NumLabels
	sel := make([]float32, B*N)
	labels := make([]int32, B)
	for b := 0; b < B; b++ {
		labels[b] = -1
		pos := 0
		for t := 0; t < T && targets != nil; t++ {
			y := targets[b*T+t]
			if y == ReadOnlyTarget && labels[b] < 0 {
				pos = t
			}
			if y < 0 {
				continue
			}
			if labels[b] >= 0 {
				return fmt.Errorf("classification batch: sequence %d has more than one labelled position", b)
			}
			if int(y) >= L {
				return fmt.Errorf("classification batch: label %d of sequence %d is outside num_labels %d", y, b, L)
			}
			labels[b], pos = y, t
		}
		// A sequence without a label still selects a row (its first); its
		// loss and gradient are zero because the label is -1.
		sel[b*N+b*T+pos] = 1
	}
	if err := m.be.Upload(m.acts.sel, sel); err != nil {
		return err
	}
	return m.be.UploadInt32(m.acts.labels, labels)
}

// sequenceHeadLoss is the sequence classification head's forward and,
// with train, its backward down to the final-norm output: a.dh gets the
// gradient at the selected rows and zero elsewhere, so Backward continues
// as for a causal LM.
func (m *Model) sequenceHeadLoss(train bool, gradScale float32) (*gpu.Tensor, error) {
	be, a := m.be, m.acts
	be.RMSNorm(a.h, a.rstdF, a.final, m.normF.W, float32(m.Cfg.RMSEps))
	be.Gemm(a.hsel, a.sel, a.h, false, false, 1, 0)
	be.Gemm(a.clogits, a.hsel, m.score.W, false, true, 1, 0)
	if !train {
		lg, err := be.DownloadF64(a.clogits)
		if err != nil {
			return nil, err
		}
		m.classLogits = lg
	}
	be.CrossEntropy(a.closses, a.clogits, a.labels, train, gradScale)
	if train {
		be.Gemm(a.dsel, a.clogits, m.score.W, false, false, 1, 0)
		be.Gemm(m.score.passGrad, a.clogits, a.hsel, true, false, 1, 1)
		be.Gemm(a.dh, a.sel, a.dsel, true, false, 1, 0)
		m.gradsDone(m.arena.outerGrad, m.score)
	}
	return a.closses, nil
}

// Probabilities returns the softmax over the labels of every sequence of
// the last evaluation Forward (train=false) of a classifier.
func (m *Model) Probabilities() [][]float64 {
	L := m.Opts.NumLabels
	if L == 0 || m.acts == nil {
		return nil
	}
	out := make([][]float64, len(m.classLogits)/L)
	for b := range out {
		row := m.classLogits[b*L : (b+1)*L]
		hi := row[0]
		for _, v := range row {
			hi = max(hi, v)
		}
		p := make([]float64, L)
		var sum float64
		for j, v := range row {
			p[j] = math.Exp(v - hi) // shifted: exp never overflows
			sum += p[j]
		}
		for j := range p {
			p[j] /= sum
		}
		out[b] = p
	}
	return out
}

// Predictions returns the argmax label of every sequence of the last
// evaluation Forward (train=false) of a classifier.
func (m *Model) Predictions() []int {
	L := m.Opts.NumLabels
	if L == 0 || m.acts == nil {
		return nil
	}
	out := make([]int, len(m.classLogits)/L)
	for b := range out {
		row := m.classLogits[b*L : (b+1)*L]
		for j, v := range row {
			if v > row[out[b]] {
				out[b] = j
			}
		}
	}
	return out
}
