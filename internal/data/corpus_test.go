// Tests of the default corpus: it builds from GOROOT into the cache, is
// reused, keys on the budget, rebuilds a damaged cache and feeds the loader.

package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultCorpus(t *testing.T) {
	if _, err := GoRoot(); err != nil {
		t.Skipf("no Go distribution: %v", err)
	}
	cache := t.TempDir()
	t.Setenv("COMPACT_CACHE", cache)
	tok := mustTokenizer(t, "gpt2")
	const budget = 200 << 10

	start := time.Now()
	trainGlob, valGlob, err := DefaultCorpus(tok, budget)
	if err != nil {
		t.Fatal(err)
	}
	first := time.Since(start)
	if !strings.HasPrefix(trainGlob, filepath.Join(cache, "corpus", "gpt2-")) {
		t.Fatalf("train glob %s is not under the cache", trainGlob)
	}
	train, err := ExpandGlobs([]string{trainGlob})
	if err != nil {
		t.Fatal(err)
	}
	val, err := ExpandGlobs([]string{valGlob})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(train[0])
	meta, err := ReadCorpusMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Bytes <= 0 || meta.Bytes > budget || meta.Files < 2 || meta.Tokenizer != "gpt2" {
		t.Fatalf("meta %+v for a %d budget", meta, budget)
	}
	t.Logf("built %d files, %d bytes, %d+%d tokens in %v", meta.Files, meta.Bytes, meta.TrainTokens, meta.ValTokens, first)

	s, err := OpenShard(train[0])
	if err != nil {
		t.Fatal(err)
	}
	head := make([]int32, 20)
	if err := s.Read(head, 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	ids := make([]uint32, len(head))
	for i, v := range head {
		ids[i] = uint32(v)
	}
	if text := tok.Decode(ids); !strings.Contains(text, "Copyright") && !strings.Contains(text, "package") {
		t.Fatalf("corpus does not start with Go source: %q", text)
	}
	vs, err := OpenShard(val[0])
	if err != nil {
		t.Fatal(err)
	}
	if vs.Len() == 0 {
		t.Fatal("empty validation shard")
	}
	vs.Close()

	// Second call: same directory, not rebuilt.
	info1, _ := os.Stat(train[0])
	trainGlob2, valGlob2, err := DefaultCorpus(tok, budget)
	if err != nil {
		t.Fatal(err)
	}
	if trainGlob2 != trainGlob || valGlob2 != valGlob {
		t.Fatalf("second call gave %s, %s", trainGlob2, valGlob2)
	}
	info2, _ := os.Stat(train[0])
	if !info1.ModTime().Equal(info2.ModTime()) || !os.SameFile(info1, info2) {
		t.Fatal("cache was rebuilt instead of reused")
	}

	// Another budget is another corpus; no temporary directories remain.
	other, _, err := DefaultCorpus(tok, 100<<10)
	if err != nil {
		t.Fatal(err)
	}
	if other == trainGlob {
		t.Fatal("different budgets share a cache entry")
	}
	ents, _ := os.ReadDir(filepath.Join(cache, "corpus"))
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Fatalf("temporary directory %s left behind", e.Name())
		}
	}

	// A damaged cache entry is rebuilt.
	if err := os.Remove(val[0]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := DefaultCorpus(tok, budget); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(val[0]); err != nil {
		t.Fatalf("damaged cache not rebuilt: %v", err)
	}

	// The corpus feeds the loader.
	l, err := NewLoader(LoaderConfig{Paths: train, B: 2, T: 64, Shuffle: true, Seed: 1, VocabSize: tok.VocabSize()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, _, err := l.Next(); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv("COMPACT_CACHE", "/some/where")
	if d, err := DefaultCacheDir(); err != nil || d != "/some/where" {
		t.Fatalf("got %q %v", d, err)
	}
	t.Setenv("COMPACT_CACHE", "")
	if d, err := DefaultCacheDir(); err == nil && filepath.Base(d) != "compact" {
		t.Fatalf("got %q", d)
	}
}

func TestEscapeGlob(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "we[ird]*dir")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "train_000000.bin")
	if err := WriteShard(p, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	got, err := ExpandGlobs([]string{filepath.Join(escapeGlob(dir), "train_*.bin")})
	if err != nil || len(got) != 1 || got[0] != p {
		t.Fatalf("got %v %v", got, err)
	}
}

// goRoot is the Go distribution the default corpus is built from; a test
// that reads its sources skips where there is none.
func goRoot(t *testing.T) string {
	t.Helper()
	d, err := GoRoot()
	if err != nil {
		t.Skip(err)
	}
	return d
}
