package model

import (
	"fmt"
	"math"
)

// CheckFinite returns an error naming the tensor and the first element that
// is NaN or infinite. Loading refuses such tensors (a diverged or corrupt
// checkpoint would otherwise train or evaluate to NaN silently), and saving
// refuses them so a diverged run never writes a checkpoint of its state.
func CheckFinite(name string, data []float32) error {
	for i, v := range data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("tensor %s holds a non-finite value (%g at element %d)", name, v, i)
		}
	}
	return nil
}
