package memreport

import "github.com/compact-llm/compact/internal/train"

// NotRunnable says why the engine would not run cfg as configured although
// it validates, or "" when it would. The fit ranking leaves such variants
// out with this note instead of predicting a run that would not happen.
// TestFusedAccumStillUnfused fails once the engine changes, so the rule
// goes when the reason does.
func NotRunnable(cfg train.Config) string {
	if cfg.Train.FusedUpdate && cfg.Train.GradAccum > 1 {
		// internal/train/build.go builds such a model unfused: its
		// gradient arena comes back (issue 19 item 1 makes it fused).
		return "train.fused_update runs unfused with train.grad_accum > 1 today"
	}
	return ""
}
