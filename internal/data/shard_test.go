// Tests of the shard formats: round trips and every kind of bad file.

package data

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readAll(t *testing.T, s *Shard) []int32 {
	t.Helper()
	out := make([]int32, s.Len())
	if err := s.Read(out, 0); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestShardRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		tokens  []uint32
		tokSize int
		magic   uint32
	}{
		{"u16", []uint32{0, 1, 50256, 65535, 7, 42}, 2, MagicUint16},
		{"u32", []uint32{0, 65536, 128000, 1<<31 - 1, 3}, 4, MagicUint32},
		{"empty", nil, 2, MagicUint16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".bin")
			if err := WriteShard(path, tc.tokens); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := binary.LittleEndian.Uint32(raw); got != tc.magic {
				t.Fatalf("magic %d, want %d", got, tc.magic)
			}
			if want := HeaderBytes + len(tc.tokens)*tc.tokSize; len(raw) != want {
				t.Fatalf("file size %d, want %d", len(raw), want)
			}
			s, err := OpenShard(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Len() != len(tc.tokens) || s.TokenSize() != tc.tokSize {
				t.Fatalf("len %d size %d, want %d %d", s.Len(), s.TokenSize(), len(tc.tokens), tc.tokSize)
			}
			got := readAll(t, s)
			for i, v := range tc.tokens {
				if uint32(got[i]) != v {
					t.Fatalf("token %d = %d, want %d", i, got[i], v)
				}
			}
			if len(tc.tokens) >= 3 { // partial read at an offset
				part := make([]int32, 2)
				if err := s.Read(part, 1); err != nil {
					t.Fatal(err)
				}
				if uint32(part[0]) != tc.tokens[1] || uint32(part[1]) != tc.tokens[2] {
					t.Fatalf("Read(off=1) = %v", part)
				}
			}
			if err := s.Read(make([]int32, 1), len(tc.tokens)); err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("read past end: %v", err)
			}
		})
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Fatalf("leftover temp file %s", e.Name())
		}
	}
}

func TestRawShard(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "train.bin")
	raw := []byte{1, 0, 0xff, 0xff, 0x34, 0x12}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenShardFormat(path, FormatNanoGPT)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := readAll(t, s)
	if len(got) != 3 || got[0] != 1 || got[1] != 65535 || got[2] != 0x1234 {
		t.Fatalf("got %v", got)
	}
	// The same file is not a valid llm.c shard.
	if _, err := OpenShardFormat(path, FormatLLMC); err == nil {
		t.Fatal("headerless file accepted as llmc")
	}
	if _, err := OpenShardFormat(path, "parquet"); err == nil || !strings.Contains(err.Error(), "nanogpt") {
		t.Fatalf("unknown format: %v", err)
	}
}

func header(magic, version, count int32) []byte {
	b := make([]byte, HeaderBytes)
	binary.LittleEndian.PutUint32(b[0:], uint32(magic))
	binary.LittleEndian.PutUint32(b[4:], uint32(version))
	binary.LittleEndian.PutUint32(b[8:], uint32(count))
	return b
}

func TestBadShards(t *testing.T) {
	dir := t.TempDir()
	good := append(header(MagicUint16, VersionUint16, 1000), make([]byte, 2000)...)
	cases := []struct {
		name    string
		content []byte // nil: do not create the file
		raw     bool
		want    []string
	}{
		{"nonexistent", nil, false, []string{"no such file"}},
		{"empty", []byte{}, false, []string{"empty"}},
		{"short_header", good[:100], false, []string{"100 bytes", "header"}},
		{"truncated", good[:HeaderBytes+1500], false, []string{"1000 tokens", "2000 bytes", "1500 bytes", "truncated"}},
		{"oversized", append(append([]byte{}, good...), 0, 0, 0, 0), false, []string{"1000 tokens", "2004 bytes", "trailing"}},
		{"bad_magic", append(header(12345, 1, 0), make([]byte, 0)...), false, []string{"bad magic 12345", "nanogpt"}},
		{"bad_version_u16", header(MagicUint16, 7, 0), false, []string{"version 7", "needs version 1"}},
		{"bad_version_u32", header(MagicUint32, 1, 0), false, []string{"version 1", "needs version 7"}},
		{"negative_count", header(MagicUint16, 1, -5), false, []string{"-5"}},
		{"u32_truncated", append(header(MagicUint32, VersionUint32, 10), make([]byte, 20)...), false, []string{"10 tokens", "40 bytes", "20 bytes"}},
		{"raw_empty", []byte{}, true, []string{"empty"}},
		{"raw_odd", []byte{1, 2, 3}, true, []string{"even", "3 bytes"}},
		{"raw_nonexistent", nil, true, []string{"no such file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".bin")
			if tc.content != nil {
				if err := os.WriteFile(path, tc.content, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			if tc.raw {
				_, err = OpenRawShard(path)
			} else {
				_, err = OpenShard(path)
			}
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("error does not name the file: %s", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		if _, err := OpenShard(dir); err == nil || !strings.Contains(err.Error(), "directory") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestShardWriterRejectsWideTokenInNarrowShard(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.bin")
	w, err := CreateShard(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]uint32{70000}); err == nil {
		t.Fatal("uint16 shard accepted token 70000")
	}
	w.Abort()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("aborted shard exists: %v", err)
	}
}
