package gpu

import "fmt"

// Storage is a backend's own handle to the memory under a tensor: host
// slices for the CPU backend, a device address for CUDA. Each backend
// package defines its storage type and reaches it through Tensor.Storage;
// nothing else looks inside. Owner names the backend, so an op handed a
// tensor of another backend can say so.
type Storage interface {
	Owner() string
}

// Tensor is a typed view into backend storage. Views made with Rows share
// the storage of their parent and are never freed on their own.
type Tensor struct {
	Name  string
	Shape []int
	Prec  Precision
	Cat   Category
	Off   int // element offset of this view into its storage

	storage Storage
	view    bool
}

// NewTensor is how a backend's Alloc makes a tensor over its storage s
// (nil for a backend that only accounts memory). shape is copied.
func NewTensor(name string, cat Category, p Precision, shape []int, s Storage) *Tensor {
	return &Tensor{Name: name, Shape: append([]int(nil), shape...), Prec: p, Cat: cat, storage: s}
}

// Storage is the backend storage under t (nil once freed).
func (t *Tensor) Storage() Storage { return t.storage }

// Release detaches t from its storage and returns it, for a backend's Free:
// a second Free of the same tensor then finds nothing to release. A view
// owns no storage and releases nil.
func (t *Tensor) Release() Storage {
	if t == nil || t.view {
		return nil
	}
	s := t.storage
	t.storage = nil
	return s
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
		storage: t.storage, Off: t.Off + lo*t.Cols(), view: true}
}

// Reshape returns a view with the same elements and a new shape.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	v := &Tensor{Name: t.Name, Shape: shape, Prec: t.Prec, Cat: t.Cat,
		storage: t.storage, Off: t.Off, view: true}
	if v.Len() != t.Len() {
		panic(fmt.Sprintf("gpu: reshape %s%v to %v", t.Name, t.Shape, shape))
	}
	return v
}

func (t *Tensor) String() string { return fmt.Sprintf("%s%v", t.Name, t.Shape) }
