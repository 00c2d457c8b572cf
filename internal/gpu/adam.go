package gpu

// The one Adam step every backend runs (Backend.Adam), in the manner of
// llm.c's adamw kernel: one routine whose operands say how each is stored,
// instead of a kernel per combination. For element i < n = Out.Len(), in
// fp32 arithmetic (the CPU reference forms the moments in float64 and
// rounds them to its element type):
//
//	g' = Grad[i] * Clip[0]                    (Clip nil: 1)
//	m  = Beta1 m + (1 - Beta1) g'
//	v  = Beta2 v + (1 - Beta2) g'^2
//	d  = Scale (m / d1) / (sqrt(v / d2) + Eps)     (d1, d2: Hyper.Corrections)
//	Out[i] = d                                 when Direction (LR, WeightDecay unused)
//	Out[i] = Out[i] - LR (d + WeightDecay Out[i])  otherwise (AdamW)
//
// m and v are read from their storage and d is formed from the new values
// before they are stored again. The storage, all data:
//
//   - the moments (M, V) are Full (fp32), Low (bf16, each store rounded
//     stochastically with Round's keys, streams StreamExpAvg and
//     StreamExpAvgSq at element Round.MomentOff+i) or Code8 (8-bit codes in
//     blocks of QuantBlock elements with one fp32 scale each, quant8.go:
//     every block is decoded, updated and encoded again as a whole);
//   - the weights (Out without Direction) are Full (an fp32 master, or the
//     CPU's float weights, stored as computed) or, when Round.Weights, bf16
//     rounded stochastically (stream StreamWeights at Round.WeightOff+i);
//   - a Low direction holds d rounded to the nearest bf16 on every backend.
//
// So a bf16 store gives the bits of the fp32 step followed by
// StochasticRound with the same keys, and an 8-bit one those of the fp32
// step followed by Quantize8 of each block.

import (
	"fmt"
	"math"
)

// AdamParams are the scalar hyper-parameters of one Adam step.
type AdamParams struct {
	LR          float32 // learning rate of this step (schedule applied)
	Beta1       float32
	Beta2       float32
	Eps         float32
	WeightDecay float32 // decoupled: p -= LR * WeightDecay * p
	Scale       float32 // multiplies the Adam direction (CompAct alpha, o_proj scale); 1 for plain AdamW
	Step        int     // 1-based step for bias correction
	Form        AdamForm
}

// AdamForm is where Adam's bias correction goes; the two differ in how eps
// meets the correction, which matters early in training.
type AdamForm int

const (
	// AdamTorch is torch.optim.AdamW: mhat / (sqrt(vhat) + eps) with
	// mhat = m/(1-b1^t), vhat = v/(1-b2^t).
	AdamTorch AdamForm = iota
	// AdamHF is HuggingFace transformers' AdamW, the CompAct paper's
	// optimizer: sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps).
	AdamHF
)

// Corrections returns the divisors of m and of v inside the square root,
// in float64: dir = Scale * (m/d1) / (sqrt(v/d2) + Eps). The torch form
// divides by 1-b1^t and 1-b2^t; the HF form folds the whole correction into
// the step size, d1 = (1-b1^t)/sqrt(1-b2^t) and d2 = 1, so every backend runs
// both forms with one kernel.
func (hp AdamParams) Corrections() (d1, d2 float64) {
	bc1 := 1 - math.Pow(float64(hp.Beta1), float64(hp.Step))
	bc2 := 1 - math.Pow(float64(hp.Beta2), float64(hp.Step))
	if hp.Form == AdamHF {
		return bc1 / math.Sqrt(bc2), 1
	}
	return bc1, bc2
}

// Moment is one Adam moment as stored: Data holds the values (Full, Low)
// or 8-bit codes (Code8), whose block b of QuantBlock elements, counted
// from Data's first, decodes through Scale[b] (Full); Scale is nil
// otherwise.
type Moment struct {
	Data, Scale *Tensor
}

// AdamUpdate is one call of Backend.Adam (see the top of this file).
type AdamUpdate struct {
	Out  *Tensor // the weights, or the direction when Direction
	Grad *Tensor // Full, or Low (bf16 gradient sums, train.grad_accum_state); Out's length
	M, V Moment  // the same storage for both
	Clip *Tensor // (1) Full; nil: 1
	// Hyper holds the step's scalars; Direction writes d instead of
	// updating weights.
	Hyper     AdamParams
	Direction bool
	Round     AdamRounding
}

// Quantized reports whether the moments are 8-bit codes.
func (u AdamUpdate) Quantized() bool { return u.M.Data.Prec == Code8 }

// Check refuses operands that do not fit together; every backend calls it
// first and panics with its message (a caller's bug, like a bad shape). The
// precisions of Grad and Clip are the backend's to check (the CPU stores
// every float alike).
func (u AdamUpdate) Check() error {
	n := u.Out.Len()
	for _, x := range []*Tensor{u.Grad, u.M.Data, u.V.Data} {
		if x.Len() != n {
			return fmt.Errorf("adam: %s has %d elements, want %d", x, x.Len(), n)
		}
	}
	switch {
	case u.M.Data.Prec != u.V.Data.Prec:
		return fmt.Errorf("adam: moments %s and %s differ in precision", u.M.Data, u.V.Data)
	case u.Hyper.Step < 1:
		return fmt.Errorf("adam: step %d, want >= 1 (bias correction)", u.Hyper.Step)
	case u.Clip != nil && u.Clip.Len() != 1:
		return fmt.Errorf("adam: clip %s must be one element", u.Clip)
	case u.Direction && u.Round.Weights:
		return fmt.Errorf("adam: a direction is not rounded stochastically")
	}
	switch u.M.Data.Prec {
	case Full:
	case Low:
		if err := u.Round.MomentParams(StreamExpAvg).CheckRange(n); err != nil {
			return fmt.Errorf("adam moments: %v", err)
		}
	case Code8:
		blocks := (n + QuantBlock - 1) / QuantBlock
		for _, s := range []*Tensor{u.M.Scale, u.V.Scale} {
			if s == nil || s.Prec != Full || s.Len() < blocks {
				return fmt.Errorf("adam: 8-bit moments of %d elements need %d Full scales, have %v", n, blocks, s)
			}
		}
		if u.Round.MomentOff%QuantBlock != 0 {
			return fmt.Errorf("adam: 8-bit moments at element %d, not at a block boundary (multiple of %d)", u.Round.MomentOff, QuantBlock)
		}
	default:
		return fmt.Errorf("adam: moments %s of precision %d", u.M.Data, int(u.M.Data.Prec))
	}
	if u.Round.Weights {
		if err := u.Round.WeightParams().CheckRange(n); err != nil {
			return fmt.Errorf("adam weights: %v", err)
		}
	}
	return nil
}
