package dist

// The rendezvous: rank 0 listens, every other rank dials it and says who it
// is (rank, world) and what it runs (a hash of its Options.Identity). Rank
// 0 asks a rank whose hash differs from its own for the identity itself,
// and once every rank has arrived either welcomes them all (handing out its
// blob, the NCCL unique id) or refuses them all, naming for each rank the
// keys that differ. A rank that waits says so every little while.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

// JoinTimeout bounds how long a rank waits for the others at the rendezvous.
var JoinTimeout = 10 * time.Minute

// A waiting rank's first notice comes after noticeAfter, then one every
// noticeEvery; helloWait bounds each step of one rank's admission.
var (
	noticeAfter = 5 * time.Second
	noticeEvery = 30 * time.Second
	helloWait   = 10 * time.Second
)

// The hello: magic, protocol version, rank, world, the identity's hash.
const (
	helloMagic   = "cmpt"
	helloVersion = 2
	helloLen     = 4 + 4 + 4 + 4 + sha256.Size
	oldHelloLen  = 8 // rank, world: a binary from before the identity check
)

// identity is a rank's Options.Identity as sent (JSON, keys sorted) and its hash.
type identity struct {
	kv   map[string]string
	json []byte
	sum  [sha256.Size]byte
}

func newIdentity(kv map[string]string) identity {
	b, _ := json.Marshal(kv) // a map of strings always encodes; keys come sorted
	return identity{kv: kv, json: b, sum: sha256.Sum256(b)}
}

// joinGroup meets the other ranks at e.Addr:e.Port. Rank 0 listens and
// answers every hello with blob; the others dial (retrying until rank 0
// listens) and return the blob they got.
func joinGroup(e Env, blob []byte, o Options) (*group, []byte, error) {
	g := newGroup(e, o)
	if e.World == 1 {
		return g, blob, nil // nobody to meet
	}
	id := newIdentity(o.Identity)
	addr := net.JoinHostPort(e.Addr, strconv.Itoa(e.Port))
	deadline := time.Now().Add(JoinTimeout)
	if e.Rank == 0 {
		if err := g.host(addr, deadline, blob, id); err != nil {
			g.shut()
			return nil, nil, err
		}
		g.start()
		return g, blob, nil
	}
	got, err := g.dial(addr, deadline, id)
	if err != nil {
		g.shut()
		return nil, nil, err
	}
	g.start()
	return g, got, nil
}

// notice tells the user what a waiting rank waits for.
func (g *group) notice(format string, a ...any) {
	if g.log != nil {
		fmt.Fprintf(g.log, "compact: rank %d: "+format+"\n", append([]any{g.rank}, a...)...)
	}
}

func left(deadline time.Time) time.Duration { return time.Until(deadline).Round(time.Second) }

func (g *group) host(addr string, deadline time.Time, blob []byte, id identity) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("rendezvous: rank 0 cannot listen on %s: %w", addr, err)
	}
	g.ln = ln
	g.peers = make([]*peer, g.world)
	differs := map[int]string{} // rank: the keys its identity differs in
	next := time.Now().Add(noticeAfter)
	for joined := 1; joined < g.world; {
		if tl, ok := ln.(*net.TCPListener); ok {
			tl.SetDeadline(minTime(deadline, next))
		}
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Now().Before(deadline) {
				g.notice("waiting at %s for %s (%d of %d ranks joined; giving up in %s)", addr, g.missing(), joined, g.world, left(deadline))
				next = time.Now().Add(noticeEvery)
				continue
			}
			return fmt.Errorf("rendezvous on %s: %d of %d ranks joined (missing %s): %w", addr, joined, g.world, g.missing(), err)
		}
		r, diff, err := g.admit(c, id)
		if err != nil {
			g.refuse(err.Error())
			return err
		}
		if r < 0 {
			continue // a stray connection (a port scan, a stale rank): keep waiting
		}
		if diff != "" {
			differs[r] = diff
		}
		joined++
	}
	ln.Close()
	g.ln = nil
	if len(differs) > 0 {
		ranks := make([]int, 0, len(differs))
		for r := range differs {
			ranks = append(ranks, r)
		}
		sort.Ints(ranks)
		parts := make([]string, len(ranks))
		for i, r := range ranks {
			parts[i] = fmt.Sprintf("rank %d has %s", r, differs[r])
		}
		err := &MismatchError{fmt.Sprintf("rendezvous: the ranks' configurations differ: %s. Every rank must resolve the same configuration and data: compare the ranks' config files, --set flags and COMPACT_* variables",
			strings.Join(parts, "; "))}
		g.refuse(err.Error())
		return err
	}
	for _, p := range g.peers[1:] {
		if err := p.send(frameWelcome, blob); err != nil {
			return fmt.Errorf("rendezvous: welcome to rank %d: %w", p.rank, err)
		}
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// missing names the ranks that have not joined rank 0 yet.
func (g *group) missing() string {
	var m []string
	for r := 1; r < g.world; r++ {
		if g.peers[r] == nil {
			m = append(m, strconv.Itoa(r))
		}
	}
	if len(m) > 8 {
		m = append(m[:8], "...")
	}
	return "rank " + strings.Join(m, ", ")
}

// admit reads one connection's hello and places its rank; r < 0 is a stray
// connection, closed. diff is set when the rank's identity differs from
// rank 0's; err refuses the whole job.
func (g *group) admit(c net.Conn, id identity) (r int, diff string, err error) {
	c.SetReadDeadline(time.Now().Add(helloWait))
	kind, msg, err := readFrame(c)
	if err != nil || kind != frameHello || (len(msg) != helloLen && len(msg) != oldHelloLen) {
		c.Close()
		return -1, "", nil
	}
	p := newPeer(-1, c)
	refuse := func(format string, a ...any) (int, string, error) {
		err := &MismatchError{fmt.Sprintf(format, a...)}
		c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		p.send(frameRefuse, []byte(err.Error()))
		c.Close()
		return -1, "", err
	}
	if len(msg) == oldHelloLen || string(msg[:4]) != helloMagic || binary.LittleEndian.Uint32(msg[4:]) != helloVersion {
		return refuse("rendezvous: a rank runs another version of compact (its hello is not this one's); start every rank with the same binary")
	}
	r, w := int(binary.LittleEndian.Uint32(msg[8:])), int(binary.LittleEndian.Uint32(msg[12:]))
	if w != g.world {
		return refuse("rendezvous: rank %d says WORLD_SIZE=%d, rank 0 has %d", r, w, g.world)
	}
	if r < 1 || r >= g.world || g.peers[r] != nil {
		return refuse("rendezvous: a second rank %d joined (or rank %d is out of range): every rank needs its own RANK", r, r)
	}
	p.rank = r
	g.peers[r] = p
	if !bytes.Equal(msg[16:], id.sum[:]) {
		diff = "a configuration whose key-by-key copy did not arrive"
		if p.send(frameIdentityReq, nil) == nil {
			c.SetReadDeadline(time.Now().Add(helloWait))
			var theirs map[string]string
			if kind, msg, err := readFrame(c); err == nil && kind == frameIdentity && json.Unmarshal(msg, &theirs) == nil {
				diff = describeDiff(theirs, id.kv)
			}
		}
	}
	c.SetReadDeadline(time.Time{})
	return r, diff, nil
}

// describeDiff names the keys whose values differ between a rank's identity
// and rank 0's: "train.lr = 0.01 (rank 0: 0.001), ...".
func describeDiff(theirs, ours map[string]string) string {
	var keys []string
	for k := range theirs {
		keys = append(keys, k)
	}
	for k := range ours {
		if _, ok := theirs[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		a, aok := theirs[k]
		b, bok := ours[k]
		if a == b && aok == bok {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s = %s (rank 0: %s)", k, shown(a, aok), shown(b, bok)))
	}
	if len(parts) == 0 { // equal maps, different hashes: cannot happen
		return "a configuration that hashes differently"
	}
	return strings.Join(parts, ", ")
}

// shown is a value as a message shows it: cut when long, "unset" when absent.
func shown(v string, ok bool) string {
	if !ok {
		return "unset"
	}
	if r := []rune(v); len(r) > 100 {
		return string(r[:100]) + "..."
	}
	if v == "" {
		return `""`
	}
	return v
}

// refuse tells every rank joined so far that the job is refused.
func (g *group) refuse(msg string) {
	for _, p := range g.peers {
		if p != nil {
			p.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
			p.send(frameRefuse, []byte(msg))
		}
	}
}

// frame is one frame read during the rendezvous.
type frame struct {
	kind byte
	msg  []byte
	err  error
}

func (g *group) dial(addr string, deadline time.Time, id identity) ([]byte, error) {
	var c net.Conn
	var err error
	next := time.Now().Add(noticeAfter)
	for {
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("rendezvous: rank %d cannot reach rank 0 at %s: %w", g.rank, addr, err)
		}
		if time.Now().After(next) {
			g.notice("waiting for rank 0 at %s (%v; giving up in %s)", addr, cause(err), left(deadline))
			next = time.Now().Add(noticeEvery)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p := newPeer(0, c)
	g.peers = []*peer{p}
	hello := append([]byte(helloMagic), make([]byte, 12)...)
	binary.LittleEndian.PutUint32(hello[4:], helloVersion)
	binary.LittleEndian.PutUint32(hello[8:], uint32(g.rank))
	binary.LittleEndian.PutUint32(hello[12:], uint32(g.world))
	if err := p.send(frameHello, append(hello, id.sum[:]...)); err != nil {
		return nil, fmt.Errorf("rendezvous: rank %d hello to %s: %w", g.rank, addr, err)
	}
	// The frames until the welcome or the refusal are read here; the
	// group's reader takes the connection over after the welcome.
	frames, stop := make(chan frame), make(chan struct{})
	defer close(stop)
	go func() {
		for {
			var f frame
			f.kind, f.msg, f.err = readFrame(c)
			select {
			case frames <- f:
			case <-stop:
				return
			}
			if f.err != nil || f.kind != frameIdentityReq {
				return
			}
		}
	}()
	timeout := time.NewTimer(time.Until(deadline))
	defer timeout.Stop()
	tick := time.NewTicker(noticeEvery)
	defer tick.Stop()
	first := time.After(noticeAfter)
	for {
		select {
		case f := <-frames:
			switch {
			case f.err != nil:
				return nil, fmt.Errorf("rendezvous: rank %d waiting for rank 0 at %s: %w", g.rank, addr, cause(f.err))
			case f.kind == frameIdentityReq:
				if err := p.send(frameIdentity, id.json); err != nil {
					return nil, fmt.Errorf("rendezvous: rank %d sending its configuration to %s: %w", g.rank, addr, err)
				}
			case f.kind == frameWelcome:
				return f.msg, nil
			case f.kind == frameRefuse:
				return nil, &MismatchError{string(f.msg)}
			default:
				return nil, fmt.Errorf("rendezvous: rank %d: rank 0 refused it (frame %d: %s)", g.rank, f.kind, f.msg)
			}
		case <-first:
			g.notice("joined rank 0 at %s; waiting for the other ranks (giving up in %s)", addr, left(deadline))
		case <-tick.C:
			g.notice("joined rank 0 at %s; waiting for the other ranks (giving up in %s)", addr, left(deadline))
		case <-timeout.C:
			c.Close()
			return nil, fmt.Errorf("rendezvous: rank %d joined rank 0 at %s but the other ranks did not arrive within %s", g.rank, addr, JoinTimeout)
		}
	}
}
