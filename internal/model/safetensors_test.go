package model

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Issue 22.7: the data section must be exactly the tensors' bytes, back to
// back: a header length one byte short (every tensor shifted by a byte),
// trailing bytes and gaps are refused, naming the file.
func TestSafetensorsDataSectionExact(t *testing.T) {
	var good bytes.Buffer
	if err := WriteSafetensors(&good, []NamedTensor{{Name: "a", Shape: []int{2}, Data: []float32{1, 2}},
		{Name: "e", Shape: []int{0}, Data: nil}, {Name: "b", Shape: []int{1}, Data: []float32{3}}}); err != nil {
		t.Fatal(err)
	}
	raw := good.Bytes()
	n := binary.LittleEndian.Uint64(raw)
	short := append(binary.LittleEndian.AppendUint64(nil, n), raw[8:8+n]...)
	short = append(append(short, ' '), raw[8+n:]...)
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"good", raw, ""},
		{"short header", short, "the tensors end at data byte 12, but the file holds 13 data bytes"},
		{"trailing", append(append([]byte(nil), raw...), 0), "13 data bytes"},
		{"gap", fuzzSafetensors(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), "tensor x starts at data byte 4"},
	} {
		p := filepath.Join(dir, c.name+".safetensors")
		os.WriteFile(p, c.raw, 0o644)
		s, err := OpenSafetensors(p)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p)):
			t.Errorf("%s: error %v, want one naming %s and %q", c.name, err, p, c.want)
		}
		if s != nil {
			s.Close()
		}
	}
	// Issue 22.8: a FIFO is refused, not opened (which would block).
	fifo := filepath.Join(dir, "fifo.safetensors")
	if err := syscall.Mkfifo(fifo, 0o644); err == nil {
		if _, err := OpenSafetensors(fifo); err == nil || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("FIFO: %v", err)
		}
	}
}
