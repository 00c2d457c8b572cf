package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/compact-llm/compact/internal/checkpoint"
)

// Metric is one line of metrics.jsonl.
type Metric struct {
	Step      int      `json:"step"`
	Loss      float64  `json:"loss"`
	LR        float64  `json:"lr"`
	Tokens    int64    `json:"tokens"`
	TokPerS   float64  `json:"tok_per_s"`
	PeakBytes int64    `json:"peak_bytes"`
	GradNorm  float64  `json:"grad_norm"`
	ValLoss   *float64 `json:"val_loss,omitempty"`
	ValAcc    *float64 `json:"val_accuracy,omitempty"` // classifiers
	ElapsedS  float64  `json:"elapsed_s"`
	// StepMs is the mean wall time of the steps since the last logged one;
	// MFU their model FLOPs utilisation, absent where the device's peak is
	// unknown (the CPU).
	StepMs float64  `json:"step_ms"`
	MFU    *float64 `json:"mfu,omitempty"`
	// Comm is the step's gradient all-reduce payload in a data-parallel job.
	Comm *CommBytes `json:"comm,omitempty"`
	// Health holds what the training-health guard saw at this step
	// (health.go); Rollbacks is how many rollbacks preceded the step, so
	// the lines of a stretch that was rolled back stay apart from the
	// stretch that replaced it.
	Health    []checkpoint.HealthEvent `json:"health,omitempty"`
	Rollbacks int                      `json:"rollbacks,omitempty"`
}

// MetricsLog appends Metric lines to DIR/metrics.jsonl.
type MetricsLog struct {
	f *os.File
}

// OpenMetrics opens DIR/metrics.jsonl for appending. Lines of steps after
// keepThrough (those a killed run logged after its last checkpoint) are
// dropped first, so a resumed run's log reads as one uninterrupted run;
// lines of stretches rolled back before the checkpoint (fewer than
// rollbacks) stay whatever their step. keepThrough < 0 starts a new log.
func OpenMetrics(dir string, keepThrough, rollbacks int) (*MetricsLog, error) {
	path := filepath.Join(dir, "metrics.jsonl")
	var kept bytes.Buffer
	if keepThrough >= 0 {
		if raw, err := os.ReadFile(path); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(raw))
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var m struct {
					Step      int `json:"step"`
					Rollbacks int `json:"rollbacks"`
				}
				if json.Unmarshal(sc.Bytes(), &m) != nil || (m.Step > keepThrough && m.Rollbacks >= rollbacks) {
					continue // a torn last line or a step redone after resume
				}
				kept.Write(sc.Bytes())
				kept.WriteByte('\n')
			}
		}
	}
	if err := checkpoint.ReplaceFile(path, kept.Bytes()); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, err
	}
	return &MetricsLog{f: f}, nil
}

// Write appends one metric line.
func (l *MetricsLog) Write(m Metric) error {
	js, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := l.f.Write(append(js, '\n')); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// Close closes the log.
func (l *MetricsLog) Close() error { return l.f.Close() }

// ReadMetrics reads a metrics.jsonl file.
func ReadMetrics(path string) ([]Metric, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Metric
	for i, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m Metric
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, i+1, err)
		}
		out = append(out, m)
	}
	return out, nil
}
