// Fuzz target for the shard readers: any file is either refused with an
// error or read completely, never a panic or an allocation the file's size
// does not justify.

package data

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// fuzzShardHeader builds an llm.c header with the given words.
func fuzzShardHeader(magic, version, count int32) []byte {
	h := make([]byte, HeaderBytes)
	binary.LittleEndian.PutUint32(h[0:], uint32(magic))
	binary.LittleEndian.PutUint32(h[4:], uint32(version))
	binary.LittleEndian.PutUint32(h[8:], uint32(count))
	return h
}

func FuzzShard(f *testing.F) {
	f.Add(append(fuzzShardHeader(MagicUint16, VersionUint16, 3), 1, 0, 2, 0, 3, 0))
	f.Add(append(fuzzShardHeader(MagicUint32, VersionUint32, 1), 0xff, 0xff, 0xff, 0xff))
	f.Add(fuzzShardHeader(MagicUint16, VersionUint16, -1))
	f.Add(fuzzShardHeader(MagicUint32, VersionUint16, 0))
	f.Add([]byte{1, 2, 3})
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(dir, "fuzz.bin")
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, format := range Formats {
			s, err := OpenShardFormat(path, format)
			if err != nil {
				continue
			}
			// A valid shard's token count is justified by the file's size.
			if int64(s.Len())*int64(s.TokenSize()) > int64(len(raw)) {
				t.Fatalf("%s: %d tokens of %d bytes from a %d-byte file", format, s.Len(), s.TokenSize(), len(raw))
			}
			buf := make([]int32, s.Len())
			if err := s.Read(buf, 0); err != nil && s.TokenSize() == 2 {
				t.Fatalf("%s: reading a valid uint16 shard: %v", format, err)
			}
			for _, v := range buf {
				if v < 0 {
					t.Fatalf("%s: negative token %d", format, v)
				}
			}
			// Out-of-range reads are errors.
			if err := s.Read(make([]int32, 1), s.Len()); err == nil {
				t.Fatalf("%s: read past the end succeeded", format)
			}
			if _, err := ReadShardTokenizer(path); err != nil && format == FormatLLMC {
				t.Fatalf("valid shard, unreadable tokenizer tag: %v", err)
			}
			s.Close()
		}
	})
}
