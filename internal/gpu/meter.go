package gpu

// Meter is a backend that allocates nothing and computes nothing: it only
// accounts the bytes that a real backend with the same element sizes would
// allocate. Building a model and optimizer on a Meter predicts their memory
// from the very code that allocates it, so the prediction cannot drift from
// the engine.
type Meter struct {
	mem    MemStats
	size   [3]int64 // bytes per element of Low, Full, Int32
	Allocs []MeterAlloc
}

// MeterAlloc is one allocation a Meter saw.
type MeterAlloc struct {
	Name  string
	Cat   Category
	Bytes int64
}

// NewMeter predicts a backend storing Low tensors in lowBytes and Full
// tensors in fullBytes per element (CPU float32: 4, 4; CUDA: 2, 4).
func NewMeter(lowBytes, fullBytes int64) *Meter {
	return &Meter{size: [3]int64{lowBytes, fullBytes, 4}}
}

var _ Backend = (*Meter)(nil)

func (m *Meter) Name() string { return "meter" }

func (m *Meter) Alloc(name string, cat Category, p Precision, shape ...int) (*Tensor, error) {
	t := &Tensor{Name: name, Shape: shape, Prec: p, Cat: cat}
	b := int64(t.Len()) * m.size[p]
	m.mem.Add(cat, b)
	m.Allocs = append(m.Allocs, MeterAlloc{name, cat, b})
	return t, nil
}

func (m *Meter) Free(t *Tensor) {
	if t != nil && !t.view {
		m.mem.Add(t.Cat, -int64(t.Len())*m.size[t.Prec])
	}
}

func (m *Meter) Memory() *MemStats { return &m.mem }
func (m *Meter) Sync() error       { return nil }

// MasterWeights mirrors a backend whose Low tensors are narrower than Full.
func (m *Meter) MasterWeights() bool { return m.size[Low] < m.size[Full] }
func (m *Meter) Close() error        { return nil }

func (m *Meter) Upload(*Tensor, []float32) error          { return nil }
func (m *Meter) Download(t *Tensor) ([]float32, error)    { return make([]float32, t.Len()), nil }
func (m *Meter) UploadF64(*Tensor, []float64) error       { return nil }
func (m *Meter) DownloadF64(t *Tensor) ([]float64, error) { return make([]float64, t.Len()), nil }
func (m *Meter) UploadInt32(*Tensor, []int32) error       { return nil }
func (m *Meter) Copy(dst, src *Tensor) error              { return nil }
func (m *Meter) Zero(*Tensor)                             {}

func (m *Meter) Embedding(out, wte, tokens *Tensor)                                 {}
func (m *Meter) EmbeddingBackward(dwte, dout, tokens *Tensor)                       {}
func (m *Meter) RMSNorm(out, rstd, x, w *Tensor, eps float32)                       {}
func (m *Meter) RMSNormBackward(dx, dw, dout, x, w, rstd *Tensor)                   {}
func (m *Meter) Gemm(c, a, b *Tensor, transA, transB bool, alpha, beta float32)     {}
func (m *Meter) Add(out, a, b *Tensor)                                              {}
func (m *Meter) Axpy(y, x *Tensor, alpha float32)                                   {}
func (m *Meter) Scale(x *Tensor, alpha float32)                                     {}
func (m *Meter) RoPE(x *Tensor, T, heads, D int, theta float32, inverse bool)       {}
func (m *Meter) Attention(out, lse, q, k, v *Tensor, B, T, H, KV, D int)            {}
func (m *Meter) SwiGLU(out, gate, up *Tensor)                                       {}
func (m *Meter) SwiGLUBackward(dgate, dup, dout, gate, up *Tensor)                  {}
func (m *Meter) CrossEntropy(losses, logits, targets *Tensor, grad bool, s float32) {}
func (m *Meter) SumSquares(acc *Tensor, ts ...*Tensor)                              {}
func (m *Meter) ClipScale(clip, sumSq *Tensor, maxNorm float32)                     {}
func (m *Meter) AdamW(p, g, mom, v, clip *Tensor, hp AdamParams)                    {}
func (m *Meter) AdamDirection(dir, g, mom, v, clip *Tensor, hp AdamParams)          {}
func (m *Meter) Projection(P *Tensor, s ProjectionStream)                           {}
func (m *Meter) StochasticRound(dst, src *Tensor, rp RoundParams)                   {}
func (m *Meter) AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *Tensor, B, T, H, KV, D int) {
}
