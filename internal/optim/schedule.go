package optim

import "math"

// Schedule is linear warmup followed by cosine decay to MinRatio * LR.
type Schedule struct {
	LR       float64
	Warmup   int
	Total    int
	MinRatio float64
}

// At returns the learning rate of 1-based optimizer step `step`.
func (s Schedule) At(step int) float64 {
	if s.Warmup > 0 && step <= s.Warmup {
		return s.LR * float64(step) / float64(s.Warmup)
	}
	if s.Total <= s.Warmup {
		return s.LR
	}
	progress := math.Min(1, float64(step-s.Warmup)/float64(s.Total-s.Warmup))
	return s.LR * (s.MinRatio + (1-s.MinRatio)*0.5*(1+math.Cos(math.Pi*progress)))
}
