package gpu

import "fmt"

// Meter is an Allocator that allocates nothing: it only accounts the bytes
// that a real backend with the same element sizes would allocate. Building a
// model and optimizer on a Meter predicts their memory from the very code
// that allocates it, so the prediction cannot drift from the engine.
type Meter struct {
	mem    MemStats
	size   [NumPrecisions]int64 // bytes per element of each precision
	Allocs []MeterAlloc
}

// MeterAlloc is one allocation a Meter saw.
type MeterAlloc struct {
	Name  string
	Cat   Category
	Bytes int64
}

// NewMeter predicts a backend storing Low tensors in lowBytes and Full
// tensors in fullBytes per element (CPU float32: 4, 4; CUDA: 2, 4); Int32
// takes 4 bytes and Code8 one on every backend.
func NewMeter(lowBytes, fullBytes int64) *Meter {
	return &Meter{size: [NumPrecisions]int64{Low: lowBytes, Full: fullBytes, Int32: 4, Code8: 1}}
}

var _ Allocator = (*Meter)(nil)

func (m *Meter) Name() string { return "meter" }

func (m *Meter) Alloc(name string, cat Category, p Precision, shape ...int) (*Tensor, error) {
	if p < Low || p >= NumPrecisions {
		return nil, fmt.Errorf("meter: alloc %s: bad precision %d", name, int(p))
	}
	t := NewTensor(name, cat, p, shape, nil)
	b := int64(t.Len()) * m.size[p]
	m.mem.Add(cat, b)
	m.Allocs = append(m.Allocs, MeterAlloc{name, cat, b})
	return t, nil
}

func (m *Meter) Free(t *Tensor) {
	if t != nil && !t.IsView() {
		m.mem.Add(t.Cat, -int64(t.Len())*m.size[t.Prec])
	}
}

func (m *Meter) Memory() *MemStats { return &m.mem }

// MasterWeights mirrors a backend whose Low tensors are narrower than Full.
func (m *Meter) MasterWeights() bool { return m.size[Low] < m.size[Full] }

// Backend lets construction code that takes a Backend (model.New,
// optim.New, Model.Prepare) run on the meter. Construction allocates and
// uploads constants; it runs no kernel. So the meter's Backend drops
// uploads (there is no storage to fill) and has no compute at all: its
// embedded Backend is nil, and an op called on it panics, which would mean
// the prediction ran work it never should.
func (m *Meter) Backend() Backend { return metered{Meter: m} }

type metered struct {
	Backend // nil: no compute
	*Meter
}

// The Allocator methods are the meter's (both embeddings have them).
func (d metered) Name() string { return d.Meter.Name() }
func (d metered) Alloc(name string, cat Category, p Precision, shape ...int) (*Tensor, error) {
	return d.Meter.Alloc(name, cat, p, shape...)
}
func (d metered) Free(t *Tensor)      { d.Meter.Free(t) }
func (d metered) Memory() *MemStats   { return d.Meter.Memory() }
func (d metered) MasterWeights() bool { return d.Meter.MasterWeights() }
func (d metered) Close() error        { return nil }

// Upload checks the length, as a real backend would, and drops the values.
func (d metered) Upload(t *Tensor, src []float32) error {
	if len(src) != t.Len() {
		return fmt.Errorf("meter: upload %d values into %s (%d elements)", len(src), t, t.Len())
	}
	return nil
}
