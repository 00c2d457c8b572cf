package gpu

import (
	"fmt"
	"sync"
)

// Category tags every device allocation so that memory can be reported by
// what it holds.
type Category int

const (
	Weights Category = iota
	Master
	Grads
	Optimizer
	Activations
	Projection
	Workspace
	Other
	NumCategories
)

var categoryNames = [NumCategories]string{"weights", "master", "grads", "optimizer", "activations", "projection", "workspace", "other"}

func (c Category) String() string {
	if c < 0 || c >= NumCategories {
		return fmt.Sprintf("category(%d)", int(c))
	}
	return categoryNames[c]
}

// MemStats tracks current and peak bytes per category and in total. The
// total peak is the peak of the sum, not the sum of the per-category peaks.
type MemStats struct {
	mu      sync.Mutex
	Current [NumCategories]int64
	Peak    [NumCategories]int64
	Total   int64
	PeakAll int64
	// PeakAt holds the per-category bytes at the moment of the total peak.
	PeakAt [NumCategories]int64
}

// Add records an allocation (bytes > 0) or a release (bytes < 0).
func (m *MemStats) Add(c Category, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Current[c] += bytes
	m.Total += bytes
	if m.Current[c] > m.Peak[c] {
		m.Peak[c] = m.Current[c]
	}
	if m.Total > m.PeakAll {
		m.PeakAll = m.Total
		m.PeakAt = m.Current
	}
}

// ResetPeak makes the current usage the new peak, for measuring one phase.
func (m *MemStats) ResetPeak() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Peak = m.Current
	m.PeakAll = m.Total
	m.PeakAt = m.Current
}

// Snapshot returns a copy safe to read while allocation goes on.
func (m *MemStats) Snapshot() MemSnapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return MemSnapshot{Current: m.Current, Peak: m.Peak, Total: m.Total, PeakAll: m.PeakAll, PeakAt: m.PeakAt}
}

// MemSnapshot is a point-in-time copy of MemStats.
type MemSnapshot struct {
	Current, Peak, PeakAt [NumCategories]int64
	Total, PeakAll        int64
}

// ByName returns the per-category values keyed by category name.
func ByName(v [NumCategories]int64) map[string]int64 {
	out := make(map[string]int64, NumCategories)
	for c := Category(0); c < NumCategories; c++ {
		out[c.String()] = v[c]
	}
	return out
}
