// Tests of the loader: window layout, epoch coverage, deterministic shuffling,
// rank sharding, exact resume, reset and bad configurations.

package data

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

const testT = 4

// Shard s holds tokens s*1000, s*1000+1, ... so a window is identified by its
// first token. Lengths 21, 13, 30 and 4 give 5 + 3 + 7 + 0 = 15 windows of
// T+1 = 5 tokens at stride 4.
var testShardLens = []int{21, 13, 30, 4}

func makeTestShards(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for s, n := range testShardLens {
		toks := make([]uint32, n)
		for i := range toks {
			toks[i] = uint32(s*1000 + i)
		}
		p := filepath.Join(dir, fmt.Sprintf("shard_%02d.bin", s))
		if err := WriteShard(p, toks); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// allWindows lists every window's first token, in sequential order.
func allWindows() []int32 {
	var out []int32
	for s, n := range testShardLens {
		for w := 0; w*testT+testT+1 <= n; w++ {
			out = append(out, int32(s*1000+w*testT))
		}
	}
	return out
}

func newTestLoader(t *testing.T, cfg LoaderConfig) *Loader {
	t.Helper()
	if cfg.T == 0 {
		cfg.T = testT
	}
	l, err := NewLoader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// samples returns the first token of each row of the next n batches,
// checking on the way that every row is a window and targets are inputs
// shifted by one.
func samples(t *testing.T, l *Loader, n int) []int32 {
	t.Helper()
	var out []int32
	for range n {
		in, tg, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		T := l.cfg.T
		if len(in) != l.cfg.B*T || len(tg) != l.cfg.B*T {
			t.Fatalf("batch sizes %d %d, want %d", len(in), len(tg), l.cfg.B*T)
		}
		for b := range l.cfg.B {
			row, trow := in[b*T:(b+1)*T], tg[b*T:(b+1)*T]
			if row[0]%testT != 0 {
				t.Fatalf("row %v does not start a window", row)
			}
			for i := range T {
				if row[i] != row[0]+int32(i) || trow[i] != row[i]+1 {
					t.Fatalf("row %v targets %v: not consecutive tokens shifted by one", row, trow)
				}
				if i+1 < T && trow[i] != row[i+1] {
					t.Fatalf("targets[%d] != inputs[%d]", i, i+1)
				}
			}
			out = append(out, row[0])
		}
	}
	return out
}

func sorted(a []int32) []int32 {
	b := append([]int32{}, a...)
	sort.Slice(b, func(i, j int) bool { return b[i] < b[j] })
	return b
}

func TestLoaderSequential(t *testing.T) {
	paths := makeTestShards(t)
	l := newTestLoader(t, LoaderConfig{Paths: paths, B: 5})
	if l.Windows() != 15 || l.SamplesPerEpoch() != 15 {
		t.Fatalf("windows %d per rank %d", l.Windows(), l.SamplesPerEpoch())
	}
	got := samples(t, l, 6) // two epochs
	want := append(allWindows(), allWindows()...)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sequential order\n got %v\nwant %v", got, want)
	}
	if st := l.State(); st.Epoch != 2 || st.Position != 0 {
		t.Fatalf("state after two epochs %+v", st)
	}
}

func TestLoaderEpochCoverageAndShuffle(t *testing.T) {
	paths := makeTestShards(t)
	for _, B := range []int{1, 3, 4, 5, 7} {
		l := newTestLoader(t, LoaderConfig{Paths: paths, B: B, Shuffle: true, Seed: 42})
		n := 3 * 15 // three epochs of samples
		got := samples(t, l, (n+B-1)/B)
		for e := range 3 {
			ep := got[e*15 : (e+1)*15]
			if !reflect.DeepEqual(sorted(ep), allWindows()) {
				t.Fatalf("B=%d epoch %d does not visit every window once: %v", B, e, ep)
			}
		}
		if reflect.DeepEqual(got[:15], got[15:30]) {
			t.Fatalf("B=%d: epochs 0 and 1 have the same order", B)
		}
		if reflect.DeepEqual(got[:15], allWindows()) {
			t.Fatalf("B=%d: shuffled epoch is in sequential order", B)
		}
	}
}

func TestLoaderDeterminism(t *testing.T) {
	paths := makeTestShards(t)
	run := func(seed uint64, prefetch int) []int32 {
		l := newTestLoader(t, LoaderConfig{Paths: paths, B: 3, Shuffle: true, Seed: seed, Prefetch: prefetch})
		return samples(t, l, 20)
	}
	a, b := run(7, 0), run(7, 4)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed gave different batches")
	}
	if c := run(7, -1); !reflect.DeepEqual(a, c) {
		t.Fatal("synchronous loader differs from prefetching one")
	}
	if d := run(8, 0); reflect.DeepEqual(a, d) {
		t.Fatal("different seeds gave the same order")
	}
}

// TestShufflePinned pins the shuffle so that a change of generator (or Go
// version) that would alter every training run's data order is caught.
func TestShufflePinned(t *testing.T) {
	a := make([]uint32, 10)
	for i := range a {
		a[i] = uint32(i)
	}
	shuffle(newStreamRNG(1, 0, 0), a)
	want := []uint32{1, 2, 6, 4, 8, 5, 0, 3, 7, 9}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("shuffle(seed 1) = %v, want %v", a, want)
	}
}

func TestLoaderRanks(t *testing.T) {
	paths := makeTestShards(t)
	for _, world := range []int{1, 2, 3, 4} {
		global := samples(t, newTestLoader(t, LoaderConfig{Paths: paths, B: 1, Shuffle: true, Seed: 3}), 15)
		per := 15 / world
		var union []int32
		for r := range world {
			l := newTestLoader(t, LoaderConfig{Paths: paths, B: 1, Shuffle: true, Seed: 3, Rank: r, World: world})
			if l.SamplesPerEpoch() != int64(per) {
				t.Fatalf("world %d: %d samples per rank, want %d", world, l.SamplesPerEpoch(), per)
			}
			got := samples(t, l, per)
			for j, v := range got {
				if v != global[j*world+r] {
					t.Fatalf("world %d rank %d sample %d = %d, want global sample %d = %d", world, r, j, v, j*world+r, global[j*world+r])
				}
			}
			union = append(union, got...)
		}
		u := sorted(union)
		for i := 1; i < len(u); i++ {
			if u[i] == u[i-1] {
				t.Fatalf("world %d: window %d given to two ranks", world, u[i])
			}
		}
		if len(u) != per*world {
			t.Fatalf("world %d: %d samples in union", world, len(u))
		}
	}
}

func TestLoaderResume(t *testing.T) {
	paths := makeTestShards(t)
	for _, shuffle := range []bool{false, true} {
		for _, world := range []int{1, 2} {
			cfg := LoaderConfig{Paths: paths, B: 4, Shuffle: shuffle, Seed: 11, World: world, Rank: world - 1}
			ref := newTestLoader(t, cfg)
			const total = 12 // several epochs; B=4 does not divide 15 or 7
			want := samples(t, ref, total)
			for _, k := range []int{0, 1, 3, 4, 5, 8} {
				name := fmt.Sprintf("shuffle=%v/world=%d/k=%d", shuffle, world, k)
				a := newTestLoader(t, cfg)
				samples(t, a, k)
				st := a.State()
				a.Close() // its prefetched batches are lost; the state must not include them
				js, err := json.Marshal(st)
				if err != nil {
					t.Fatal(err)
				}
				var back LoaderState
				if err := json.Unmarshal(js, &back); err != nil {
					t.Fatal(err)
				}
				c := cfg
				c.State = &back
				b := newTestLoader(t, c)
				if got := samples(t, b, total-k); !reflect.DeepEqual(got, want[k*4:]) {
					t.Fatalf("%s: resumed batches differ\n got %v\nwant %v", name, got, want[k*4:])
				}
				// Restore on a running loader, rank 0 restoring a state saved by another rank.
				c0 := cfg
				c0.Rank = 0
				d := newTestLoader(t, c0)
				samples(t, d, 2)
				if err := d.Restore(back); err != nil {
					t.Fatal(err)
				}
				e := newTestLoader(t, c0)
				samples(t, e, k)
				if got, want0 := samples(t, d, 3), samples(t, e, 3); !reflect.DeepEqual(got, want0) {
					t.Fatalf("%s: Restore on a running loader differs", name)
				}
			}
		}
	}
}

func TestLoaderResumeAcrossEpochBoundary(t *testing.T) {
	paths := makeTestShards(t)
	cfg := LoaderConfig{Paths: paths, B: 5, Shuffle: true, Seed: 5}
	ref := newTestLoader(t, cfg)
	want := samples(t, ref, 9)
	a := newTestLoader(t, cfg)
	samples(t, a, 3) // exactly one epoch
	st := a.State()
	if st.Epoch != 1 || st.Position != 0 {
		t.Fatalf("state at epoch end %+v", st)
	}
	samples(t, a, 1)
	if st = a.State(); st.Epoch != 1 || st.Position != 5 {
		t.Fatalf("state %+v", st)
	}
	c := cfg
	c.State = &st
	b := newTestLoader(t, c)
	if got := samples(t, b, 5); !reflect.DeepEqual(got, want[4*5:]) {
		t.Fatal("resume at epoch 1 differs")
	}
	// A state saved at the very end of an epoch (Position == samples) is the
	// start of the next.
	end := st
	end.Epoch, end.Position = 0, 15
	if err := b.Restore(end); err != nil {
		t.Fatal(err)
	}
	if got := samples(t, b, 1); !reflect.DeepEqual(got, want[15:20]) {
		t.Fatal("restore at epoch end differs")
	}
}

func TestLoaderRestoreMismatch(t *testing.T) {
	paths := makeTestShards(t)
	a := newTestLoader(t, LoaderConfig{Paths: paths, B: 2, Shuffle: true, Seed: 1})
	st := a.State()
	for _, tc := range []struct {
		cfg  LoaderConfig
		want string
	}{
		{LoaderConfig{Paths: paths, B: 2, Shuffle: true, Seed: 2}, "seed"},
		{LoaderConfig{Paths: paths, B: 2, Shuffle: false, Seed: 1}, "shuffle"},
		{LoaderConfig{Paths: paths, B: 2, T: 2, Shuffle: true, Seed: 1}, "seq_len"},
		{LoaderConfig{Paths: paths, B: 2, Shuffle: true, Seed: 1, World: 2}, "world"},
		{LoaderConfig{Paths: paths[:3], B: 2, Shuffle: true, Seed: 1}, "fingerprint"},
	} {
		c := tc.cfg
		c.State = &st
		if c.T == 0 {
			c.T = testT
		}
		_, err := NewLoader(c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("mismatched %s: %v", tc.want, err)
		}
	}
	bad := st
	bad.Position = 99
	if err := a.Restore(bad); err == nil {
		t.Error("position beyond the epoch accepted")
	}
	// B may change: position counts samples.
	c := LoaderConfig{Paths: paths, B: 3, T: testT, Shuffle: true, Seed: 1, State: &st}
	if l, err := NewLoader(c); err != nil {
		t.Errorf("different B refused: %v", err)
	} else {
		l.Close()
	}
}

func TestLoaderReset(t *testing.T) {
	paths := makeTestShards(t)
	l := newTestLoader(t, LoaderConfig{Paths: paths, B: 4})
	first := samples(t, l, 2)
	samples(t, l, 3)
	l.Reset()
	if got := samples(t, l, 2); !reflect.DeepEqual(got, first) {
		t.Fatal("Reset did not restart the stream")
	}
	if st := l.State(); st.Epoch != 0 || st.Position != 8 {
		t.Fatalf("state after reset %+v", st)
	}
	l.Close()
	if _, _, err := l.Next(); err == nil {
		t.Fatal("Next after Close succeeded")
	}
}

func TestLoaderNanoGPT(t *testing.T) {
	p := filepath.Join(t.TempDir(), "train.bin")
	raw := make([]byte, 2*9)
	for i := range 9 {
		raw[2*i] = byte(i)
	}
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	l := newTestLoader(t, LoaderConfig{Paths: []string{p}, Format: FormatNanoGPT, B: 1})
	in, tg, err := l.Next()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, []int32{0, 1, 2, 3}) || !reflect.DeepEqual(tg, []int32{1, 2, 3, 4}) {
		t.Fatalf("got %v %v", in, tg)
	}
}

func TestLoaderBadConfig(t *testing.T) {
	paths := makeTestShards(t)
	dir := t.TempDir()
	tiny := filepath.Join(dir, "tiny.bin")
	if err := WriteShard(tiny, []uint32{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "corrupt.bin")
	os.WriteFile(corrupt, header(MagicUint16, 1, 100), 0o644)
	for _, tc := range []struct {
		name string
		cfg  LoaderConfig
		want []string
	}{
		{"zero_B", LoaderConfig{Paths: paths, B: 0, T: 4}, []string{"B=0"}},
		{"zero_T", LoaderConfig{Paths: paths, B: 1, T: 0}, []string{"T=0"}},
		{"no_paths", LoaderConfig{B: 1, T: 4}, []string{"no shard"}},
		{"rank", LoaderConfig{Paths: paths, B: 1, T: 4, Rank: 2, World: 2}, []string{"rank 2"}},
		{"format", LoaderConfig{Paths: paths, B: 1, T: 4, Format: "arrow"}, []string{"arrow"}},
		{"too_few_tokens", LoaderConfig{Paths: []string{tiny, paths[3]}, B: 1, T: 4}, []string{"too few tokens", tiny, paths[3], "7 tokens", "5 tokens"}},
		{"too_many_ranks", LoaderConfig{Paths: paths, B: 1, T: 4, World: 16, Rank: 3}, []string{"15 windows", "16"}},
		{"corrupt_shard", LoaderConfig{Paths: []string{paths[0], corrupt}, B: 1, T: 4}, []string{corrupt, "truncated"}},
		{"missing_shard", LoaderConfig{Paths: []string{filepath.Join(dir, "nope.bin")}, B: 1, T: 4}, []string{"nope.bin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewLoader(tc.cfg)
			if err == nil {
				l.Close()
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestLoaderVocabCheck: a token id >= VocabSize anywhere in a shard is
// found when the loader opens, before any batch, naming shard and position.
func TestLoaderVocabCheck(t *testing.T) {
	paths := makeTestShards(t)
	if l, err := NewLoader(LoaderConfig{Paths: paths[2:3], B: 1, T: 4, VocabSize: 2010}); err == nil {
		l.Close()
		t.Fatal("a shard with tokens >= vocab size opened")
	} else if !strings.Contains(err.Error(), "token 2010") || !strings.Contains(err.Error(), paths[2]) {
		t.Fatalf("got %v", err)
	}
	l, err := NewLoader(LoaderConfig{Paths: paths[2:3], B: 1, T: 4, VocabSize: 1 << 20})
	if err != nil {
		t.Fatalf("a large enough vocabulary: %v", err)
	}
	l.Close()
}

// TestLoaderTokenizerTag: shards record the tokenizer that wrote them; a
// loader for another tokenizer refuses them, untagged shards still load.
func TestLoaderTokenizerTag(t *testing.T) {
	dir := t.TempDir()
	tagged := filepath.Join(dir, "tagged.bin")
	w, err := CreateShard(tagged, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetTokenizer("byte"); err != nil {
		t.Fatal(err)
	}
	w.Write(make([]uint32, 64))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain.bin")
	if err := WriteShard(plain, make([]uint32, 64)); err != nil {
		t.Fatal(err)
	}
	if name, err := ReadShardTokenizer(tagged); err != nil || name != "byte" {
		t.Fatalf("tag %q, %v", name, err)
	}
	for _, c := range []struct {
		path, tok string
		ok        bool
	}{{tagged, "byte", true}, {tagged, "gpt2", false}, {plain, "gpt2", true}, {tagged, "", true}} {
		l, err := NewLoader(LoaderConfig{Paths: []string{c.path}, B: 1, T: 4, Tokenizer: c.tok})
		if (err == nil) != c.ok {
			t.Errorf("%s with tokenizer %q: error %v", c.path, c.tok, err)
		}
		if err == nil {
			l.Close()
		} else if !strings.Contains(err.Error(), "tokenizer byte") || !strings.Contains(err.Error(), c.path) {
			t.Errorf("error %v does not name the shard and its tokenizer", err)
		}
	}
}

func TestExpandGlobs(t *testing.T) {
	paths := makeTestShards(t)
	dir := filepath.Dir(paths[0])
	got, err := ExpandGlobs([]string{filepath.Join(dir, "shard_0[23].bin"), filepath.Join(dir, "*.bin")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{paths[2], paths[3], paths[0], paths[1]}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	pat := filepath.Join(dir, "val_*.bin")
	if _, err := ExpandGlobs([]string{filepath.Join(dir, "*.bin"), pat}); err == nil || !strings.Contains(err.Error(), pat) {
		t.Fatalf("no-match error: %v", err)
	}
	if _, err := ExpandGlobs(nil); err == nil {
		t.Fatal("empty pattern list accepted")
	}
}
