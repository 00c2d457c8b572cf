package bench

import "strings"

// peakBF16 is the dense bf16 tensor-core rate of GPUs we know, for MFU.
func peakBF16(device string) float64 {
	for _, k := range []string{"H100", "H200", "GH200"} {
		if strings.Contains(device, k) {
			return 989e12
		}
	}
	if strings.Contains(device, "A100") {
		return 312e12
	}
	return 0
}
