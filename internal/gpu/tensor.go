package gpu

import "fmt"

// Tensor is a typed view into backend storage. Views made with Rows share
// the storage of their parent and are never freed on their own.
type Tensor struct {
	Name  string
	Shape []int
	Prec  Precision
	Cat   Category

	// Backend-private storage: the CPU backend keeps a []float32, []float64
	// or []int32 here, the CUDA backend a device pointer.
	Storage any
	Ptr     uintptr
	Off     int // element offset of this view into Storage / Ptr
	view    bool
}

// Len is the number of elements.
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Dim returns dimension i, counting negative i from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.Shape)
	}
	return t.Shape[i]
}

// Cols is the product of all dimensions but the first: the row width.
func (t *Tensor) Cols() int {
	if len(t.Shape) == 0 {
		return 1
	}
	return t.Len() / t.Shape[0]
}

// IsView reports whether t borrows another tensor's storage.
func (t *Tensor) IsView() bool { return t.view }

// Rows returns the view of rows [lo, hi) along the first dimension.
func (t *Tensor) Rows(lo, hi int) *Tensor {
	if lo < 0 || hi > t.Shape[0] || lo > hi {
		panic(fmt.Sprintf("gpu: rows [%d,%d) of %s%v", lo, hi, t.Name, t.Shape))
	}
	shape := append([]int{hi - lo}, t.Shape[1:]...)
	return &Tensor{Name: t.Name, Shape: shape, Prec: t.Prec, Cat: t.Cat,
		Storage: t.Storage, Ptr: t.Ptr, Off: t.Off + lo*t.Cols(), view: true}
}

// Reshape returns a view with the same elements and a new shape.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	v := &Tensor{Name: t.Name, Shape: shape, Prec: t.Prec, Cat: t.Cat,
		Storage: t.Storage, Ptr: t.Ptr, Off: t.Off, view: true}
	if v.Len() != t.Len() {
		panic(fmt.Sprintf("gpu: reshape %s%v to %v", t.Name, t.Shape, shape))
	}
	return v
}

func (t *Tensor) String() string { return fmt.Sprintf("%s%v", t.Name, t.Shape) }
