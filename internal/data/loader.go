// This file holds the training data loader: it cuts shards into windows of
// T+1 tokens, orders them per epoch (sequentially, or shuffled
// deterministically from the seed), deals them to data-parallel ranks,
// prefetches batches in the background and records an exact, resumable
// position.

package data

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LoaderConfig configures NewLoader.
type LoaderConfig struct {
	Paths  []string // shard files, in order (see ExpandGlobs)
	Format string   // one of Formats; "" is FormatLLMC
	B, T   int      // batch size and sequence length

	Seed    uint64 // shuffle seed
	Shuffle bool   // permute shards and windows every epoch; false reads sequentially

	Rank, World int // data-parallel rank in [0, World); World 0 means 1

	// Prefetch is how many batches a background goroutine prepares ahead:
	// 0 means 2, negative means none (batches are read inside Next).
	Prefetch int

	// VocabSize, if > 0, makes a token >= VocabSize an error naming the
	// shard, instead of an out-of-range embedding lookup later.
	VocabSize int

	// Tokenizer, if set, is the name of the run's tokenizer: a shard whose
	// header records another one is refused.
	Tokenizer string

	// State, if set, resumes from a position saved by (*Loader).State.
	State *LoaderState
}

// LoaderState is the exact position of a loader's stream. It is meant to be
// saved as JSON in checkpoints. Epoch and Position are where the stream
// stands; the other fields identify the stream so that Restore can refuse a
// state that belongs to different data or settings. Position is the same on
// every rank, so one rank's state restores all of them.
type LoaderState struct {
	Epoch    int   `json:"epoch"`
	Position int64 `json:"position"` // samples this rank consumed in Epoch

	SamplesPerEpoch int64  `json:"samples_per_epoch"` // per rank
	Windows         int64  `json:"windows"`           // windows per epoch, all ranks
	SeqLen          int    `json:"seq_len"`
	Seed            uint64 `json:"seed"`
	Shuffle         bool   `json:"shuffle"`
	World           int    `json:"world"`
	Fingerprint     string `json:"fingerprint"` // hash of the shards' token counts, in order
}

// Loader streams (inputs, targets) batches. Its methods must be called from
// one goroutine.
//
// Each shard is cut into windows of T+1 tokens at stride T: window w covers
// tokens [w*T, w*T+T+1); inputs are the first T tokens and targets the last
// T. Windows never cross shards. An epoch visits every window once, in shard
// order then window order (each permuted from (Seed, epoch) when
// Shuffle). Global sample g of an epoch goes to rank g % World; every rank
// gets Windows/World samples per epoch (the remainder is dropped so that
// ranks stay in step). Batches wrap into the next epoch.
type Loader struct {
	cfg         LoaderConfig
	world, rank int
	shards      []*Shard
	windows     []int64 // windows per shard
	total       int64   // windows per epoch
	perRank     int64
	tokens      int64
	fingerprint string

	epoch int   // position after the last batch Next returned
	pos   int64 //
	err   error // sticky error from reading
	open  bool

	// background producer
	ch   chan loaderBatch
	quit chan struct{}

	plan epochPlan // used only by whoever produces batches
}

type loaderBatch struct {
	inputs, targets []int32
	epoch           int
	pos             int64
	err             error
}

// epochPlan caches the visiting order of one epoch.
type epochPlan struct {
	valid     bool
	epoch     int
	order     []int   // shard indices in visiting order
	cum       []int64 // cum[i]: windows before order[i]; len(order)+1 entries
	permShard int     // shard whose window permutation is in perm, -1 none
	perm      []uint32
}

// ExpandGlobs expands each pattern (a path or a filepath.Match glob) to the
// files it names, sorted within each pattern, keeping the patterns' order and
// dropping repeats. A pattern that matches nothing is an error naming it.
func ExpandGlobs(patterns []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, p := range patterns {
		matches, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("data path %q: %w", p, err)
		}
		if len(matches) == 0 {
			if _, err := os.Stat(p); err == nil { // literal name with glob characters
				matches = []string{p}
			} else {
				return nil, fmt.Errorf("data path %q matches no files", p)
			}
		}
		sort.Strings(matches)
		for _, m := range matches {
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no data paths given")
	}
	return out, nil
}

// NewLoader opens the shards and checks that they hold at least one window
// per rank. Close releases them.
func NewLoader(cfg LoaderConfig) (*Loader, error) {
	if cfg.B <= 0 || cfg.T <= 0 {
		return nil, fmt.Errorf("loader: batch size B=%d and sequence length T=%d must be positive", cfg.B, cfg.T)
	}
	world := cfg.World
	if world == 0 {
		world = 1
	}
	if world < 0 || cfg.Rank < 0 || cfg.Rank >= world {
		return nil, fmt.Errorf("loader: rank %d is outside [0, world %d)", cfg.Rank, world)
	}
	if err := CheckFormat(cfg.Format); err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	if len(cfg.Paths) == 0 {
		return nil, errors.New("loader: no shard files given")
	}
	l := &Loader{cfg: cfg, world: world, rank: cfg.Rank, open: true}
	h := sha256.New()
	for _, p := range cfg.Paths {
		s, err := OpenShardFormat(p, cfg.Format)
		if err != nil {
			l.closeShards()
			return nil, fmt.Errorf("loader: %w", err)
		}
		l.shards = append(l.shards, s)
		if err := checkShard(s, cfg.Tokenizer, cfg.VocabSize); err != nil {
			l.closeShards()
			return nil, fmt.Errorf("loader: %w", err)
		}
		var w int64
		if n := int64(s.Len()); n >= int64(cfg.T)+1 {
			w = (n - 1) / int64(cfg.T)
		}
		l.windows = append(l.windows, w)
		l.total += w
		l.tokens += int64(s.Len())
		binary.Write(h, binary.LittleEndian, int64(s.Len()))
	}
	l.fingerprint = hex.EncodeToString(h.Sum(nil))[:16]
	if l.total == 0 {
		l.closeShards()
		return nil, fmt.Errorf("loader: too few tokens: %s hold %d tokens, but one sample needs T+1 = %d tokens within one shard",
			describePaths(cfg.Paths), l.tokens, cfg.T+1)
	}
	l.perRank = l.total / int64(world)
	if l.perRank == 0 {
		l.closeShards()
		return nil, fmt.Errorf("loader: %s hold %d windows of %d tokens, fewer than the %d data-parallel ranks",
			describePaths(cfg.Paths), l.total, cfg.T+1, world)
	}
	l.plan.permShard = -1
	if cfg.State != nil {
		if err := l.Restore(*cfg.State); err != nil {
			l.closeShards()
			return nil, err
		}
	}
	return l, nil
}

// describePaths names the files for an error, eliding long lists.
func describePaths(paths []string) string {
	const show = 4
	if len(paths) == 1 {
		return "file " + paths[0]
	}
	if len(paths) <= show {
		return "files " + strings.Join(paths, ", ")
	}
	return fmt.Sprintf("files %s and %d more", strings.Join(paths[:show], ", "), len(paths)-show)
}

// SamplesPerEpoch returns the samples this rank sees per epoch.
func (l *Loader) SamplesPerEpoch() int64 { return l.perRank }

// Windows returns the windows per epoch across all ranks.
func (l *Loader) Windows() int64 { return l.total }

// Tokens returns the tokens in all shards.
func (l *Loader) Tokens() int64 { return l.tokens }

// State returns the position after the last batch Next returned (prefetched
// batches do not count).
func (l *Loader) State() LoaderState {
	return LoaderState{
		Epoch:           l.epoch,
		Position:        l.pos,
		SamplesPerEpoch: l.perRank,
		Windows:         l.total,
		SeqLen:          l.cfg.T,
		Seed:            l.cfg.Seed,
		Shuffle:         l.cfg.Shuffle,
		World:           l.world,
		Fingerprint:     l.fingerprint,
	}
}

// Restore moves the stream to s, a state saved by State from a loader over
// the same shards with the same T, Seed, Shuffle and World (B and Rank may
// differ). The next batch is the one that followed when s was saved.
func (l *Loader) Restore(s LoaderState) error {
	if !l.open {
		return errors.New("loader: Restore after Close")
	}
	cur := l.State()
	var bad []string
	check := func(name string, saved, now any) {
		if saved != now {
			bad = append(bad, fmt.Sprintf("%s %v (now %v)", name, saved, now))
		}
	}
	check("seq_len", s.SeqLen, cur.SeqLen)
	check("seed", s.Seed, cur.Seed)
	check("shuffle", s.Shuffle, cur.Shuffle)
	check("world", s.World, cur.World)
	check("windows", s.Windows, cur.Windows)
	check("fingerprint", s.Fingerprint, cur.Fingerprint)
	if len(bad) > 0 {
		return fmt.Errorf("loader: saved position belongs to a different data stream: saved %s", strings.Join(bad, ", "))
	}
	if s.Epoch < 0 || s.Position < 0 || s.Position > l.perRank {
		return fmt.Errorf("loader: saved position epoch %d, sample %d is outside an epoch of %d samples", s.Epoch, s.Position, l.perRank)
	}
	l.stop()
	l.epoch, l.pos, l.err = s.Epoch, s.Position, nil
	if l.pos == l.perRank {
		l.epoch, l.pos = l.epoch+1, 0
	}
	return nil
}

// Reset restarts the stream from the beginning of epoch 0 (for fixed
// validation batches).
func (l *Loader) Reset() {
	l.stop()
	l.epoch, l.pos, l.err = 0, 0, nil
}

// Next returns the next batch: inputs and targets of B*T tokens each, row b
// at [b*T, (b+1)*T), targets[i] being the token after inputs[i]. The slices
// belong to the caller.
func (l *Loader) Next() (inputs, targets []int32, err error) {
	if !l.open {
		return nil, nil, errors.New("loader: Next after Close")
	}
	if l.err != nil {
		return nil, nil, l.err
	}
	var b loaderBatch
	if l.cfg.Prefetch < 0 {
		b = l.makeBatch(l.epoch, l.pos)
	} else {
		if l.ch == nil {
			l.start()
		}
		var ok bool
		if b, ok = <-l.ch; !ok {
			b.err = errors.New("loader: prefetcher stopped")
		}
	}
	if b.err != nil {
		l.err = b.err
		l.stop()
		return nil, nil, b.err
	}
	l.epoch, l.pos = b.epoch, b.pos
	return b.inputs, b.targets, nil
}

// Close stops the prefetcher and closes the shards.
func (l *Loader) Close() error {
	if !l.open {
		return nil
	}
	l.stop()
	l.open = false
	return l.closeShards()
}

func (l *Loader) closeShards() error {
	var first error
	for _, s := range l.shards {
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
	}
	l.shards = nil
	return first
}

// start launches the prefetcher at the current position.
func (l *Loader) start() {
	depth := l.cfg.Prefetch
	if depth == 0 {
		depth = 2
	}
	ch := make(chan loaderBatch, depth-1) // plus one held by the blocked sender
	quit := make(chan struct{})
	l.ch, l.quit = ch, quit
	go func(epoch int, pos int64) {
		defer close(ch)
		for {
			b := l.makeBatch(epoch, pos)
			select {
			case ch <- b:
			case <-quit:
				return
			}
			if b.err != nil {
				return
			}
			epoch, pos = b.epoch, b.pos
		}
	}(l.epoch, l.pos)
}

// stop ends the prefetcher, if running, and discards what it prepared.
func (l *Loader) stop() {
	if l.ch == nil {
		return
	}
	close(l.quit)
	for range l.ch {
	}
	l.ch, l.quit = nil, nil
}

// makeBatch reads B samples starting at (epoch, pos) and returns them with
// the position that follows.
func (l *Loader) makeBatch(epoch int, pos int64) loaderBatch {
	B, T := l.cfg.B, l.cfg.T
	b := loaderBatch{inputs: make([]int32, B*T), targets: make([]int32, B*T)}
	win := make([]int32, T+1)
	for i := range B {
		if pos >= l.perRank {
			epoch, pos = epoch+1, 0
		}
		shard, w := l.locate(epoch, int64(pos)*int64(l.world)+int64(l.rank))
		s := l.shards[shard]
		if err := s.Read(win, int(w)*T); err != nil {
			b.err = fmt.Errorf("loader: %w", err)
			return b
		}
		if v := l.cfg.VocabSize; v > 0 {
			for j, t := range win {
				if int(t) >= v {
					b.err = fmt.Errorf("loader: shard %s: token %d at position %d is outside the vocabulary of %d (wrong tokenizer?)",
						s.Path(), t, int(w)*T+j, v)
					return b
				}
			}
		}
		copy(b.inputs[i*T:(i+1)*T], win[:T])
		copy(b.targets[i*T:(i+1)*T], win[1:])
		pos++
	}
	if pos >= l.perRank {
		epoch, pos = epoch+1, 0
	}
	b.epoch, b.pos = epoch, pos
	return b
}

// locate maps global sample g of epoch to (shard, window).
func (l *Loader) locate(epoch int, g int64) (shard int, window int64) {
	p := &l.plan
	if !p.valid || p.epoch != epoch {
		l.planEpoch(epoch)
	}
	i := sort.Search(len(p.order), func(i int) bool { return p.cum[i+1] > g })
	shard = p.order[i]
	local := g - p.cum[i]
	if !l.cfg.Shuffle {
		return shard, local
	}
	if p.permShard != shard {
		n := int(l.windows[shard])
		if cap(p.perm) < n {
			p.perm = make([]uint32, n)
		}
		p.perm = p.perm[:n]
		for j := range p.perm {
			p.perm[j] = uint32(j)
		}
		shuffle(newStreamRNG(l.cfg.Seed, epoch, uint64(shard)+1), p.perm)
		p.permShard = shard
	}
	return shard, int64(p.perm[local])
}

// planEpoch computes the shard order of epoch.
func (l *Loader) planEpoch(epoch int) {
	p := &l.plan
	n := len(l.shards)
	order := make([]uint32, n)
	for i := range order {
		order[i] = uint32(i)
	}
	if l.cfg.Shuffle {
		shuffle(newStreamRNG(l.cfg.Seed, epoch, 0), order)
	}
	p.order = p.order[:0]
	p.cum = append(p.cum[:0], 0)
	for _, s := range order {
		if l.windows[s] == 0 {
			continue
		}
		p.order = append(p.order, int(s))
		p.cum = append(p.cum, p.cum[len(p.cum)-1]+l.windows[s])
	}
	p.valid, p.epoch, p.permShard = true, epoch, -1
}

// splitmix64 is a bijective 64-bit mixer (Steele et al.).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// newStreamRNG returns the PCG generator for (seed, epoch, stream); stream 0
// orders shards, stream s+1 orders the windows of shard s. PCG-DXSM is a fixed
// algorithm, so the shuffles do not change across Go versions.
func newStreamRNG(seed uint64, epoch int, stream uint64) *rand.PCG {
	return rand.NewPCG(splitmix64(seed^0x636f6d70616374), splitmix64(splitmix64(uint64(epoch))^stream))
}

// uniform returns a uniform integer in [0, n) (Lemire's method), written out
// so that it cannot change with the standard library.
func uniform(r *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(r.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), n)
		}
	}
	return hi
}

// shuffle is a Fisher-Yates shuffle driven by r.
func shuffle(r *rand.PCG, a []uint32) {
	for i := len(a) - 1; i > 0; i-- {
		j := uniform(r, uint64(i+1))
		a[i], a[j] = a[j], a[i]
	}
}
