package tensorboard

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// records splits an event file into its TFRecords, checking each length
// and CRC (cmd/compact's runextras_test.go reads the events themselves).
func records(t *testing.T, raw []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(raw) > 0 {
		n := binary.LittleEndian.Uint64(raw)
		if len(raw) < 16 || binary.LittleEndian.Uint32(raw[8:]) != maskedCRC(raw[:8]) || uint64(len(raw)) < 16+n {
			t.Fatalf("bad record header %x", raw[:min(len(raw), 12)])
		}
		rec := raw[12 : 12+n]
		if binary.LittleEndian.Uint32(raw[12+n:]) != maskedCRC(rec) {
			t.Fatalf("bad record CRC")
		}
		out, raw = append(out, rec), raw[16+n:]
	}
	return out
}

// A new file holds the version event and then one event per Scalars call,
// its tags sorted; a resumed one marks its start after the version.
func TestEventFile(t *testing.T) {
	for _, after := range []int{0, 40} {
		dir := t.TempDir()
		w, err := Open(dir, after)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Scalars(after+1, map[string]float64{"train/loss": 2.5, "train/lr": 1e-3}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "events.out.tfevents.*"))
		if len(files) != 1 {
			t.Fatalf("event files %v", files)
		}
		raw, _ := os.ReadFile(files[0])
		recs := records(t, raw)
		want := 2
		if after > 0 {
			want = 3
		}
		if len(recs) != want || !bytes.Contains(recs[0], []byte("brain.Event:2")) {
			t.Fatalf("after %d: %d records, want %d starting with the version", after, len(recs), want)
		}
		last := recs[len(recs)-1]
		if i, j := bytes.Index(last, []byte("train/loss")), bytes.Index(last, []byte("train/lr")); i < 0 || j < i {
			t.Errorf("after %d: scalars event %q lacks its tags in order", after, last)
		}
	}
}
