// Fuzz target for the safetensors reader: any file is refused with an error
// or opens with every tensor readable, never a panic or an allocation that
// the file's size does not justify.

package model

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSafetensors builds a file from a JSON header and data bytes.
func fuzzSafetensors(header string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

func FuzzSafetensors(f *testing.F) {
	var good bytes.Buffer
	if err := WriteSafetensors(&good, []NamedTensor{{Name: "a", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}},
		{Name: "b", Shape: []int{1}, Data: []float32{-1}}}); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	var half bytes.Buffer
	if err := WriteSafetensorsAs(&half, []NamedTensor{{Name: "h", Shape: []int{2}, Data: []float32{0.5, 3}}}, "BF16"); err != nil {
		f.Fatal(err)
	}
	f.Add(half.Bytes())
	f.Add(fuzzSafetensors(`{"__metadata__":{"format":"pt"},"x":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, []byte{0, 60, 0, 188}))
	f.Add(fuzzSafetensors(`{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil))
	f.Add(fuzzSafetensors(`{"x":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(dir, "fuzz.safetensors")
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := OpenSafetensors(path)
		if err != nil {
			return
		}
		defer s.Close()
		for name, ti := range s.Tensors {
			// Every element is backed by at least 2 bytes of the file.
			if n := ti.Len(); n < 0 || n*2 > int64(len(raw)) {
				t.Fatalf("tensor %s: %d elements from a %d-byte file", name, n, len(raw))
			}
			v, err := s.Float32(name)
			if err != nil {
				continue
			}
			if int64(len(v)) != ti.Len() {
				t.Fatalf("tensor %s: %d values, want %d", name, len(v), ti.Len())
			}
		}
	})
}
