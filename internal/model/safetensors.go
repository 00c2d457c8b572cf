package model

// safetensors: an 8-byte little-endian header length, a JSON header mapping
// each tensor name to {dtype, shape, data_offsets [begin, end)} relative to
// the data section (plus "__metadata__"), then the raw little-endian data.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
)

// TensorInfo is one entry of a safetensors header.
type TensorInfo struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// Len is the number of elements.
func (t TensorInfo) Len() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

var dtypeSize = map[string]int64{"F32": 4, "BF16": 2, "F16": 2, "F64": 8, "I32": 4, "I64": 8}

// SafetensorsFile is an open, validated safetensors file.
type SafetensorsFile struct {
	Path     string
	Tensors  map[string]TensorInfo
	Metadata map[string]string
	f        *os.File
	dataOff  int64
}

// maxHeader bounds the JSON header so a corrupt length cannot exhaust memory.
const maxHeader = 100 << 20

// OpenSafetensors reads and validates the header: known dtypes, sizes that
// match shapes, offsets inside the file and not overlapping.
func OpenSafetensors(path string) (*SafetensorsFile, error) {
	if err := checkRegular(path); err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	s, err := parseSafetensors(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	s.Path, s.f = path, f
	return s, nil
}

func parseSafetensors(f *os.File, size int64) (*SafetensorsFile, error) {
	var lenBuf [8]byte
	if _, err := f.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("file of %d bytes is too short for a header", size)
	}
	hlen := binary.LittleEndian.Uint64(lenBuf[:])
	if hlen > maxHeader || int64(hlen) > size-8 {
		return nil, fmt.Errorf("header length %d does not fit in a file of %d bytes", hlen, size)
	}
	hdr := make([]byte, hlen)
	if _, err := f.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("header is not valid JSON: %w", err)
	}
	s := &SafetensorsFile{Tensors: map[string]TensorInfo{}, dataOff: 8 + int64(hlen)}
	dataLen := size - s.dataOff
	type span struct {
		lo, hi int64
		name   string
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &s.Metadata); err != nil {
				return nil, fmt.Errorf("__metadata__: %w", err)
			}
			continue
		}
		var ti TensorInfo
		if err := json.Unmarshal(msg, &ti); err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		es, ok := dtypeSize[ti.DType]
		if !ok {
			return nil, fmt.Errorf("tensor %s: unsupported dtype %q", name, ti.DType)
		}
		// Elements are counted with an overflow check: a shape whose product
		// wraps around int64 could otherwise match a tiny byte span.
		elems := int64(1)
		for _, d := range ti.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %s: negative dimension in shape %v", name, ti.Shape)
			}
			if d != 0 && elems > dataLen/es/int64(d) {
				elems = -1
				break
			}
			elems *= int64(d)
		}
		if elems < 0 {
			for _, d := range ti.Shape {
				if d == 0 { // an empty tensor, whatever the other dimensions
					elems = 0
				}
			}
		}
		if elems < 0 {
			return nil, fmt.Errorf("tensor %s: shape %v of %s needs more than the file's %d data bytes", name, ti.Shape, ti.DType, dataLen)
		}
		lo, hi := ti.DataOffsets[0], ti.DataOffsets[1]
		if lo < 0 || hi < lo || hi > dataLen {
			return nil, fmt.Errorf("tensor %s: data offsets [%d, %d) outside the %d data bytes (truncated file?)", name, lo, hi, dataLen)
		}
		if hi-lo != elems*es {
			return nil, fmt.Errorf("tensor %s: %d bytes for shape %v of %s, want %d", name, hi-lo, ti.Shape, ti.DType, elems*es)
		}
		s.Tensors[name] = ti
		spans = append(spans, span{lo, hi, name})
	}
	// The tensors fill the data section back to back from its start to the
	// end of the file, as the format requires (transformers' reader refuses
	// anything else): a header length that is off by a byte would otherwise
	// load every tensor shifted by that byte.
	sort.Slice(spans, func(i, j int) bool {
		return spans[i].lo < spans[j].lo || spans[i].lo == spans[j].lo && spans[i].hi < spans[j].hi
	})
	var end int64
	for i, sp := range spans {
		switch {
		case sp.lo < end:
			return nil, fmt.Errorf("tensors %s and %s overlap", spans[i-1].name, sp.name)
		case sp.lo > end:
			return nil, fmt.Errorf("tensor %s starts at data byte %d, but the tensors before it end at %d (a gap: corrupt header?)", sp.name, sp.lo, end)
		}
		end = sp.hi
	}
	if end != dataLen {
		return nil, fmt.Errorf("the tensors end at data byte %d, but the file holds %d data bytes after its %d-byte header "+
			"(the header length is wrong, or bytes were appended)", end, dataLen, hlen)
	}
	return s, nil
}

// Float32 reads tensor name converted to float32.
func (s *SafetensorsFile) Float32(name string) ([]float32, error) {
	ti, ok := s.Tensors[name]
	if !ok {
		return nil, fmt.Errorf("safetensors %s: no tensor %s", s.Path, name)
	}
	buf := make([]byte, ti.DataOffsets[1]-ti.DataOffsets[0])
	if _, err := s.f.ReadAt(buf, s.dataOff+ti.DataOffsets[0]); err != nil && err != io.EOF {
		return nil, fmt.Errorf("safetensors %s: tensor %s: %w", s.Path, name, err)
	}
	out := make([]float32, ti.Len())
	switch ti.DType {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		}
	case "BF16":
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(buf[2*i:])) << 16)
		}
	case "F16":
		for i := range out {
			out[i] = halfToFloat(binary.LittleEndian.Uint16(buf[2*i:]))
		}
	case "F64":
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(buf[8*i:])))
		}
	default:
		return nil, fmt.Errorf("safetensors %s: tensor %s has dtype %s, not a float", s.Path, name, ti.DType)
	}
	return out, nil
}

// Close closes the file.
func (s *SafetensorsFile) Close() error { return s.f.Close() }

func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := int32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		f := float32(mant) / 1024 * float32(math.Pow(2, -14))
		if sign != 0 {
			return -f
		}
		return f
	case exp == 31:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | uint32(exp-15+127)<<23 | mant<<13)
}

// NamedTensor is one float32 tensor to write.
type NamedTensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// WriteSafetensors writes tensors as F32 in the given order to w, with
// metadata format=pt so that transformers loads the file as it is.
func WriteSafetensors(w io.Writer, tensors []NamedTensor) error {
	return WriteSafetensorsAs(w, tensors, "F32")
}

// bf16Bits rounds to the nearest bfloat16, ties to even (NaN stays NaN).
func bf16Bits(v float32) uint16 {
	b := math.Float32bits(v)
	if v != v {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// WriteSafetensorsAs writes tensors as F32 or BF16 (rounded to nearest
// even), as transformers' save_pretrained does for those dtypes.
func WriteSafetensorsAs(w io.Writer, tensors []NamedTensor, dtype string) error {
	if dtype != "F32" && dtype != "BF16" {
		return fmt.Errorf("safetensors: cannot write dtype %s (F32 or BF16)", dtype)
	}
	es := dtypeSize[dtype]
	hdr := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var off int64
	for _, t := range tensors {
		n := int64(len(t.Data)) * es
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		hdr[t.Name] = TensorInfo{DType: dtype, Shape: shape, DataOffsets: [2]int64{off, off + n}}
		off += n
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	for len(js)%8 != 0 { // keep the data section 8-byte aligned, as HF does
		js = append(js, ' ')
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(js)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(js); err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<20)
	for _, t := range tensors {
		for _, v := range t.Data {
			if es == 2 {
				buf = binary.LittleEndian.AppendUint16(buf, bf16Bits(v))
			} else {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			}
			if len(buf) >= 1<<20 {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	_, err = w.Write(buf)
	return err
}
