package dist

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compact-llm/compact/internal/gpu/cpu"
)

// joinEach joins world ranks in goroutines, rank r with opts(r), and
// returns what each Join returned.
func joinEach(t *testing.T, world int, opts func(r int) Options) ([]Comm, []error) {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cs, errs := make([]Comm, world), make([]error, world)
	var wg sync.WaitGroup
	for r := range world {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := Env{Rank: r, World: world, LocalRank: r, Addr: "127.0.0.1", Port: port}
			cs[r], errs[r] = Join(e, cpu.New(1), opts(r))
		}()
	}
	wg.Wait()
	return cs, errs
}

// Ranks whose configurations differ are refused at the rendezvous, every
// one of them, with a message naming each differing rank, key and value.
func TestRendezvousRefusesDifferentConfigurations(t *testing.T) {
	base := map[string]string{"train.lr": "0.001", "train.seed": "42", "train.micro_batch": "4", "data.train": "train_000.bin (1000 bytes, 0a1b)"}
	variant := map[int]map[string]string{
		1: {"train.lr": "0.01"},
		3: {"train.seed": "7", "data.train": "train_000.bin (900 bytes, 9f8e)", "extra.key": "1"},
	}
	_, errs := joinEach(t, 4, func(r int) Options {
		id := map[string]string{}
		for k, v := range base {
			id[k] = v
		}
		for k, v := range variant[r] {
			id[k] = v
		}
		return Options{Identity: id}
	})
	for r, err := range errs {
		var me *MismatchError
		if !errors.As(err, &me) {
			t.Fatalf("rank %d: got %v, want a MismatchError", r, err)
		}
		for _, want := range []string{
			"rank 1 has train.lr = 0.01 (rank 0: 0.001)",
			"rank 3 has data.train = train_000.bin (900 bytes, 9f8e) (rank 0: train_000.bin (1000 bytes, 0a1b)), extra.key = 1 (rank 0: unset), train.seed = 7 (rank 0: 42)",
			"COMPACT_*",
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("rank %d: %q lacks %q", r, err, want)
			}
		}
		if strings.Contains(err.Error(), "rank 2 has") || strings.Contains(err.Error(), "micro_batch") {
			t.Errorf("rank %d: %q names what agrees", r, err)
		}
	}
	// The same identities join.
	cs, errs := joinEach(t, 2, func(int) Options { return Options{Identity: base} })
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	each(t, cs, func(_ int, c Comm) error { return c.Close() })
}

// A rank that waits at the rendezvous says what for, until it gives up.
func TestRendezvousSaysWhatItWaitsFor(t *testing.T) {
	defer func(a, e, j time.Duration) { noticeAfter, noticeEvery, JoinTimeout = a, e, j }(noticeAfter, noticeEvery, JoinTimeout)
	noticeAfter, noticeEvery, JoinTimeout = 100*time.Millisecond, 200*time.Millisecond, 1500*time.Millisecond
	// Ranks 0 and 1 of 3 meet, rank 2 never comes; rank 1 of 2 alone
	// finds no rank 0.
	logs := make([]*syncWriter, 3)
	for i := range logs {
		logs[i] = &syncWriter{w: &bytes.Buffer{}}
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	lonely, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, e := range []Env{
		{Rank: 0, World: 3, Addr: "127.0.0.1", Port: port},
		{Rank: 1, World: 3, LocalRank: 1, Addr: "127.0.0.1", Port: port},
		{Rank: 1, World: 2, LocalRank: 1, Addr: "127.0.0.1", Port: lonely},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Join(e, cpu.New(1), Options{Log: logs[i]})
		}()
	}
	wg.Wait()
	for i, want := range []string{
		"compact: rank 0: waiting at 127.0.0.1:",
		"compact: rank 1: joined rank 0 at 127.0.0.1:",
		"compact: rank 1: waiting for rank 0 at 127.0.0.1:",
	} {
		if errs[i] == nil {
			t.Errorf("case %d: joined a job that lacks a rank", i)
		}
		if got := logs[i].String(); !strings.Contains(got, want) || !strings.Contains(got, "giving up in") {
			t.Errorf("case %d: notices %q, want %q", i, got, want)
		}
	}
	if got := logs[0].String(); !strings.Contains(got, "for rank 2 (2 of 3 ranks joined") {
		t.Errorf("rank 0 does not name the missing rank: %q", got)
	}
}
