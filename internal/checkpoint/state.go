package checkpoint

// trainer_state.json: what a checkpoint holds besides tensors.

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/data"
)

// StateVersion is bumped when trainer_state.json changes incompatibly.
const StateVersion = 1

// TrainerState is everything besides tensors that a resumed run needs.
type TrainerState struct {
	Version    int             `json:"version"`
	Step       int             `json:"step"`   // optimizer steps completed
	Tokens     int64           `json:"tokens"` // training tokens consumed
	LR         float64         `json:"lr"`     // learning rate of the last step
	Epoch      uint32          `json:"projection_epoch"`
	Loader     json.RawMessage `json:"loader"` // data.LoaderState
	Config     config.Config   `json:"config"`
	Tokenizer  string          `json:"tokenizer"`
	Optimizer  string          `json:"optimizer"` // resolved form, adamw_hf or adamw_torch
	TrainFiles []string        `json:"train_files"`
	ValFiles   []string        `json:"val_files"`
	Base       string          `json:"base,omitempty"`   // fine-tuning: where the weights started
	World      int             `json:"world,omitempty"`  // data-parallel ranks that wrote it (0: one)
	Health     *HealthState    `json:"health,omitempty"` // the training-health guard's memory
	// AdamStart is the step after which the Adam moments last started from
	// zero (a --weights-only resume); the bias correction counts from it.
	AdamStart int `json:"adam_start,omitempty"`
	// Schedule records every resume that changed the learning-rate schedule.
	Schedule []ScheduleChange `json:"schedule_changes,omitempty"`
	// Notices are the settings this run could not apply, with what ran
	// instead (internal/train/notices.go).
	Notices []string `json:"notices,omitempty"`
}

// ReadState reads trainer_state.json of a checkpoint directory.
func ReadState(dir string) (TrainerState, error) {
	var st TrainerState
	raw, err := data.ReadRegular(filepath.Join(dir, StateFile))
	if err != nil {
		return st, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if st.Version != StateVersion {
		return st, fmt.Errorf("checkpoint %s: trainer state version %d, this build reads %d", dir, st.Version, StateVersion)
	}
	// Checkpoints from before train.optimizer existed trained with torch's
	// form, the only one there was.
	if st.Optimizer == "" {
		st.Optimizer = config.OptimizerTorch
	}
	if st.Config.Train.Optimizer == "" {
		st.Config.Train.Optimizer = config.OptimizerTorch
	}
	// ... and with an fp32 master and fp32 moments, likewise.
	if st.Config.Train.Weights == "" {
		st.Config.Train.Weights = config.WeightsMaster
	}
	if st.Config.Train.OptimizerState == "" {
		st.Config.Train.OptimizerState = config.StateFP32
	}
	// ... and fp32 gradient sums, before train.grad_accum_state.
	if st.Config.Train.GradAccumState == "" {
		st.Config.Train.GradAccumState = config.StateFP32
	}
	// ... and read special-token text as text, before data.special_tokens.
	if st.Config.Data.SpecialTokens == "" {
		st.Config.Data.SpecialTokens = data.SpecialText
	}
	// ... and eagerly, before train.cuda_graph existed (free on resume).
	if st.Config.Train.CUDAGraph == "" {
		st.Config.Train.CUDAGraph = config.GraphOff
	}
	return st, nil
}

// ScheduleChange records a resume that changed the learning-rate schedule
// (a new train.steps stretches the warmup and the cosine), each field as
// [before, after].
type ScheduleChange struct {
	Step       int        `json:"step"` // the last step trained under the old schedule
	Steps      [2]int     `json:"steps"`
	Warmup     [2]int     `json:"warmup_steps"`
	PeakLR     [2]float64 `json:"peak_lr"`
	MinLRRatio [2]float64 `json:"min_lr_ratio"`
	NextLR     [2]float64 `json:"next_lr"` // the lr of step Step+1
}

// CompareSchedules compares the schedules of the saved run and now at
// step; ok is false when they are the same.
func CompareSchedules(step int, saved, now config.Config) (c ScheduleChange, ok bool) {
	a, b := saved.Schedule(), now.Schedule()
	if a == b {
		return c, false
	}
	return ScheduleChange{Step: step, Steps: [2]int{a.Total, b.Total}, Warmup: [2]int{a.Warmup, b.Warmup},
		PeakLR: [2]float64{a.LR, b.LR}, MinLRRatio: [2]float64{a.MinRatio, b.MinRatio},
		NextLR: [2]float64{a.At(step + 1), b.At(step + 1)}}, true
}

// String says what changed, for the log.
func (c ScheduleChange) String() string {
	var parts []string
	if c.Steps[0] != c.Steps[1] {
		parts = append(parts, fmt.Sprintf("train.steps %d -> %d", c.Steps[0], c.Steps[1]))
	}
	if c.Warmup[0] != c.Warmup[1] {
		parts = append(parts, fmt.Sprintf("warmup %d -> %d steps", c.Warmup[0], c.Warmup[1]))
	}
	if c.PeakLR[0] != c.PeakLR[1] {
		parts = append(parts, fmt.Sprintf("peak lr %.4g -> %.4g", c.PeakLR[0], c.PeakLR[1]))
	}
	if c.MinLRRatio[0] != c.MinLRRatio[1] {
		parts = append(parts, fmt.Sprintf("min_lr_ratio %g -> %g", c.MinLRRatio[0], c.MinLRRatio[1]))
	}
	return fmt.Sprintf("resume: the learning-rate schedule changes after step %d: %s; the lr of step %d is %.4g (the old schedule's: %.4g); recorded in the trainer_state.json of the checkpoints to come",
		c.Step, strings.Join(parts, ", "), c.Step+1, c.NextLR[1], c.NextLR[0])
}

// HealthEvent is one thing the training-health guard (internal/train/health.go)
// saw or did, as metrics.jsonl records it on its step's line.
type HealthEvent struct {
	Step  int     `json:"step"`
	Kind  string  `json:"kind"`
	Value float64 `json:"value"` // the loss, average, gradient norm or val loss that rose
	Ref   float64 `json:"ref"`   // what it rose from
	// Since is the last step known good: the step Ref belongs to, or for a
	// spike the last normal sample's. A rollback returns to a checkpoint
	// before it.
	Since int `json:"since,omitempty"`
	// Instability: an event that train.on_instability acts on (a confirmed
	// spike, a rise); a lone spike sample is reported only.
	Instability bool   `json:"instability,omitempty"`
	Message     string `json:"message"`
}

// Rise is what the guard knows of one level (the loss's, the gradient
// norm's): its lowest value since the last rise it reported, the step that
// low stands for, and the first step of a rise in progress (0: none).
type Rise struct {
	Low     float64 `json:"low"`
	LowStep int     `json:"low_step"`
	From    int     `json:"from,omitempty"`
}

// HealthState is the training-health guard's memory, saved in
// trainer_state.json so a resumed run judges as the uninterrupted one would.
type HealthState struct {
	Samples     int       `json:"samples"`
	LastStep    int       `json:"last_step"`        // the step of the previous sample
	Losses      []float64 `json:"losses,omitempty"` // the last window's logged losses (spikes not yet confirmed left out)
	Loss        Rise      `json:"loss"`             // the loss level's lowest and the rise in progress
	SpikeStep   int       `json:"spike_step,omitempty"`
	SpikeFrom   int       `json:"spike_from,omitempty"` // the last normal sample's step before it
	SpikeSeen   bool      `json:"spike_confirmed,omitempty"`
	Grads       []float64 `json:"grads,omitempty"` // the last window's gradient norms after warmup
	Grad        Rise      `json:"grad_norm"`       // likewise for the gradient norm's level
	ValBest     float64   `json:"val_best,omitempty"`
	ValBestStep int       `json:"val_best_step,omitempty"`
	// Across rollbacks: the learning-rate multiplier (1 until a rollback
	// lowers it), how many rollbacks were taken, and every event so far.
	LRScale   float64       `json:"lr_scale"`
	Rollbacks int           `json:"rollbacks,omitempty"`
	Events    []HealthEvent `json:"events,omitempty"`
}
