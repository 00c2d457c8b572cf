package train

import "github.com/compact-llm/compact/internal/config"

import "strings"

// PeakFLOPS is the dense bf16 tensor-core rate of the GPUs we know, by the
// device's description, for model FLOPs utilisation; 0 where unknown (the
// CPU, other GPUs), where MFU is not reported.
func PeakFLOPS(device string) float64 {
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

// MFU is the model FLOPs utilisation of tokPerS training tokens a second
// of cfg on device, or nil where the device's peak is unknown.
func MFU(cfg config.Config, device string, tokPerS float64) *float64 {
	peak := PeakFLOPS(device)
	if peak == 0 {
		return nil
	}
	u := tokPerS * cfg.Model.TrainFLOPsPerToken(cfg.Train.SeqLen) / peak
	return &u
}
