// Fuzz target for trainer_state.json, as --resume reads and checks it:
// any file is refused with an error or gives a state the resume checks
// accept or refuse, never a panic.

package checkpoint

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/config"
)

func FuzzTrainerState(f *testing.F) {
	cfg := config.Default()
	cfg.Train.Steps = 10
	st := TrainerState{Version: StateVersion, Step: 3, Tokens: 300, LR: 1e-3, Config: cfg, Tokenizer: "byte", Optimizer: config.OptimizerHF,
		Loader:    json.RawMessage(`{"epoch":0,"position":12,"samples_per_epoch":100,"windows":100,"seq_len":256,"seed":42,"shuffle":true,"world":1,"fingerprint":"0123456789abcdef"}`),
		AdamStart: 2, Schedule: []ScheduleChange{{Step: 2, Steps: [2]int{5, 10}}}}
	good, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(append([]byte("\ufeff"), good...))
	f.Add([]byte(`{"version":1,"step":3,"config":{"Model":{"VocabSize":10},"Train":{"Steps":5}}}`))
	f.Add([]byte(`{"version":1,"step":-5,"lr":1e400,"config":{"train":{"lr":"NaN","steps":1.5}}}`))
	f.Add([]byte(`{"version":1,"step":3,"config":{"model":{"nope":1}}}`))
	f.Add([]byte(`{"version":2}`))
	dir := filepath.Join(f.TempDir(), "step-0000003")
	if err := os.Mkdir(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if err := os.WriteFile(filepath.Join(dir, StateFile), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := ReadState(dir)
		if err != nil {
			if !strings.Contains(err.Error(), dir) {
				t.Fatalf("error does not name the checkpoint: %v", err)
			}
			return
		}
		// What --resume does next with it: every check returns, none panics.
		CheckState(dir, st, cfg)
		CheckResumeConfig(filepath.Join(dir, StateFile), st.Config, cfg, false, func(string, ...any) {})
		if c, ok := CompareSchedules(st.Step, st.Config, cfg); ok {
			_ = c.String()
		}
	})
}
