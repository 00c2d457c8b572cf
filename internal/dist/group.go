package dist

// The group: a star of TCP connections with rank 0 at the centre. It hands
// rank 0's blob (the NCCL unique id) to every rank at the rendezvous
// (rendezvous.go, where the ranks' configurations are compared), then
// stays open for the whole run as a liveness channel and carries the small
// host collectives (and, on the CPU, the tensor ones). A connection that
// closes without a goodbye means its process died, even by kill -9; one
// that stays silent past the stall limit, that it stopped (stall.go): rank
// 0 tells every other rank which one, and every rank's waits fail at once.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Frame kinds on a group connection.
const (
	frameHello       byte = iota + 1 // rank -> 0: protocol, rank, world, identity hash (rendezvous.go)
	frameWelcome                     // 0 -> rank: rank 0's blob
	frameData                        // a collective's payload
	frameBye                         // clean leave: what follows is EOF
	frameFail                        // the sender (or, from rank 0, a peer) failed: message
	frameDataPart                    // a leading part of a payload larger than one frame
	frameIdentityReq                 // 0 -> rank at the rendezvous: its hash differs, send the identity
	frameIdentity                    // rank -> 0: its identity, key by key (JSON)
	frameRefuse                      // 0 -> rank at the rendezvous: the job is refused: message
	frameBeat                        // a heartbeat: the sender is alive (stall.go)
)

// maxFrame bounds one frame; dataPart is the size a larger payload is cut
// into (frameDataPart frames, then its last part as a frameData): a 350m
// model's weights are 1.6 GB in one all-gather on the CPU. A variable so
// the tests can cut small payloads.
const maxFrame = 1 << 30

var dataPart = maxFrame

// group is one rank's end of the star.
type group struct {
	rank, world int
	peers       []*peer // rank 0: one per other rank (index = rank); others: peers[0] only
	ln          net.Listener
	log         io.Writer // rendezvous notices; nil: none

	// Liveness (stall.go): a peer silent for stall ends the job.
	stall     time.Duration
	stallName string
	epoch     time.Time     // heard times are offsets from it (monotonic)
	quit      chan struct{} // closed when the group shuts: heartbeats and the watch stop
	quitOnce  sync.Once

	failOnce sync.Once
	failed   chan struct{} // closed on the first failure
	failErr  error
	mu       sync.Mutex
	onFail   []func(error)
	closed   bool
}

// peer is one connection and what its reader has received.
type peer struct {
	rank int
	conn net.Conn
	wmu  sync.Mutex
	w    *bufio.Writer
	data chan []byte   // frameData payloads, in order
	done chan struct{} // closed when the reader stops
	bye  bool          // set by the reader before done closes

	heard      atomic.Int64 // when bytes last arrived, since the group's epoch
	delivering atomic.Bool  // the reader waits for this rank to take a payload
}

func newPeer(rank int, c net.Conn) *peer {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return &peer{rank: rank, conn: c, w: bufio.NewWriterSize(c, 1<<16), data: make(chan []byte, 4), done: make(chan struct{})}
}

// newGroup is e's end of the star before the rendezvous.
func newGroup(e Env, o Options) *group {
	return &group{rank: e.Rank, world: e.World, failed: make(chan struct{}), log: o.Log,
		stall: o.Stall, stallName: o.StallName, epoch: time.Now(), quit: make(chan struct{})}
}

// start runs one reader per connection, and the heartbeats and the watch
// for silent peers.
func (g *group) start() {
	for _, p := range g.peers {
		if p != nil {
			p.heard.Store(int64(time.Since(g.epoch)))
			go g.read(p)
		}
	}
	g.startLiveness()
}

// read delivers data frames and turns a close without goodbye, or a fail
// frame, into the group's failure.
func (g *group) read(p *peer) {
	defer close(p.done)
	r := bufio.NewReaderSize(progressReader{g, p}, 1<<16)
	var partial []byte // the parts of a payload so far
	for {
		kind, msg, err := readFrame(r)
		if err != nil {
			if !p.bye && !g.isClosed() {
				g.fail(fmt.Errorf("rank %d exited without leaving the group (killed or crashed): %v", p.rank, cause(err)))
			}
			return
		}
		switch kind {
		case frameDataPart:
			partial = append(partial, msg...)
		case frameData:
			if partial != nil {
				msg, partial = append(partial, msg...), nil
			}
			p.delivering.Store(true)
			select {
			case p.data <- msg:
			case <-g.failed:
				return
			}
			p.delivering.Store(false)
			p.heard.Store(int64(time.Since(g.epoch)))
		case frameBye:
			p.bye = true
		case frameFail:
			g.fail(errors.New(string(msg)))
		case frameBeat: // progress is all it says
		}
	}
}

func cause(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("connection closed")
	}
	return err
}

// fail records the first failure, tells the other ranks (rank 0 relays it
// to everyone) and runs the failure hooks.
func (g *group) fail(err error) {
	g.failOnce.Do(func() {
		g.failErr = &PeerError{err}
		// Relay before waking this rank's waiters: they may exit at once.
		for _, p := range g.peers {
			if p != nil { // best effort: the peer may be gone or stuck
				p.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
				p.send(frameFail, []byte(err.Error()))
			}
		}
		close(g.failed)
		g.mu.Lock()
		hooks := g.onFail
		g.mu.Unlock()
		for _, h := range hooks {
			h(err)
		}
	})
}

// err is the group's failure, or nil.
func (g *group) err() error {
	select {
	case <-g.failed:
		return g.failErr
	default:
		return nil
	}
}

func (g *group) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

func (p *peer) send(kind byte, msg []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return p.writeFrame(kind, msg)
}

// writeFrame writes one frame; the caller holds wmu.
func (p *peer) writeFrame(kind byte, msg []byte) error {
	var hdr [5]byte
	hdr[0] = kind
	binary.LittleEndian.PutUint32(hdr[1:], uint32(len(msg)))
	if _, err := p.w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := p.w.Write(msg); err != nil {
		return err
	}
	return p.w.Flush()
}

// sendData sends one payload of any size: parts of dataPart bytes, the
// last one as the frameData that completes it, with no other frame between.
func (p *peer) sendData(msg []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	for len(msg) > dataPart {
		if err := p.writeFrame(frameDataPart, msg[:dataPart]); err != nil {
			return err
		}
		msg = msg[dataPart:]
	}
	return p.writeFrame(frameData, msg)
}

func readFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return 0, nil, err
	}
	return hdr[0], msg, nil
}

// sendTo sends a data frame to rank r (a peer of this rank).
func (g *group) sendTo(r int, msg []byte) error {
	if err := g.err(); err != nil {
		return err
	}
	if err := g.peerOf(r).sendData(msg); err != nil {
		g.fail(fmt.Errorf("rank %d: sending to rank %d: %v", g.rank, r, err))
		return g.err()
	}
	return nil
}

// recvFrom waits for the next data frame from rank r, or the group's failure.
func (g *group) recvFrom(r int) ([]byte, error) {
	p := g.peerOf(r)
	select {
	case msg := <-p.data:
		return msg, nil
	case <-g.failed:
		return nil, g.failErr
	case <-p.done:
		select { // data that arrived just before the close still counts
		case msg := <-p.data:
			return msg, nil
		default:
		}
		if err := g.err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("rank %d left the group while rank %d waited for it", r, g.rank)
	}
}

func (g *group) peerOf(r int) *peer {
	if g.rank == 0 {
		return g.peers[r]
	}
	return g.peers[0]
}

// allReduce gathers every rank's bytes at rank 0, which folds them in with
// add in rank order (so the result is the same whatever the timing) and
// sends the result back to every rank.
func (g *group) allReduce(local []byte, add func(acc, in []byte) error) ([]byte, error) {
	if g.world == 1 {
		return local, nil
	}
	if g.rank != 0 {
		if err := g.sendTo(0, local); err != nil {
			return nil, err
		}
		return g.recvFrom(0)
	}
	acc := append([]byte(nil), local...)
	for r := 1; r < g.world; r++ {
		in, err := g.recvFrom(r)
		if err != nil {
			return nil, err
		}
		if len(in) != len(acc) {
			err := fmt.Errorf("all-reduce: rank %d sent %d bytes, rank 0 has %d (ranks out of step)", r, len(in), len(acc))
			g.fail(err)
			return nil, err
		}
		if err := add(acc, in); err != nil {
			return nil, err
		}
	}
	for r := 1; r < g.world; r++ {
		if err := g.sendTo(r, acc); err != nil {
			return nil, err
		}
	}
	return acc, nil
}

// broadcast gives every rank root's msg.
func (g *group) broadcast(msg []byte, root int) ([]byte, error) {
	if g.world == 1 {
		return msg, nil
	}
	if g.rank != 0 {
		if g.rank == root {
			return msg, g.sendTo(0, msg)
		}
		return g.recvFrom(0)
	}
	if root != 0 {
		var err error
		if msg, err = g.recvFrom(root); err != nil {
			return nil, err
		}
	}
	for r := 1; r < g.world; r++ {
		if r == root {
			continue
		}
		if err := g.sendTo(r, msg); err != nil {
			return nil, err
		}
	}
	return msg, nil
}

// sumF64 sums v over the ranks in rank order, in place.
func (g *group) sumF64(v []float64) error {
	out, err := g.allReduce(f64Bytes(v), func(acc, in []byte) error {
		for i := 0; i < len(acc); i += 8 {
			s := math.Float64frombits(binary.LittleEndian.Uint64(acc[i:])) + math.Float64frombits(binary.LittleEndian.Uint64(in[i:]))
			binary.LittleEndian.PutUint64(acc[i:], math.Float64bits(s))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range v {
		v[i] = math.Float64frombits(binary.LittleEndian.Uint64(out[8*i:]))
	}
	return nil
}

func f64Bytes(v []float64) []byte {
	b := make([]byte, 0, 8*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	}
	return b
}

// leave ends the group cleanly: a barrier (so no collective is left half
// read), a goodbye to every peer, then waits (bounded) for theirs.
func (g *group) leave() error {
	err := g.sumF64(nil)
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.stopLiveness() // no heartbeat after the goodbye
	if err == nil {
		for _, p := range g.peers {
			if p != nil {
				p.send(frameBye, nil)
				if tc, ok := p.conn.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
			}
		}
		timeout := time.After(10 * time.Second)
		for _, p := range g.peers {
			if p != nil {
				select {
				case <-p.done:
				case <-timeout:
				}
			}
		}
	}
	g.shut()
	return err
}

// abort tells the others this rank failed and drops every connection.
func (g *group) abort(cause error) {
	g.fail(fmt.Errorf("rank %d failed: %v", g.rank, cause))
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.shut()
}

func (g *group) shut() {
	g.stopLiveness()
	if g.ln != nil {
		g.ln.Close()
	}
	for _, p := range g.peers {
		if p != nil {
			p.conn.Close()
		}
	}
}

// hook runs f (once, in the failing goroutine) when the group fails.
func (g *group) hook(f func(error)) {
	g.mu.Lock()
	g.onFail = append(g.onFail, f)
	g.mu.Unlock()
}

// gather collects every rank's bytes at rank 0 (index = rank; nil on the
// other ranks). Each must be n bytes when n >= 0.
func (g *group) gather(local []byte, n int, what string) ([][]byte, error) {
	if g.rank != 0 {
		return nil, g.sendTo(0, local)
	}
	all := make([][]byte, g.world)
	all[0] = local
	for r := 1; r < g.world; r++ {
		in, err := g.recvFrom(r)
		if err != nil {
			return nil, err
		}
		if n >= 0 && len(in) != n {
			err := fmt.Errorf("%s: rank %d sent %d bytes, want %d (ranks out of step)", what, r, len(in), n)
			g.fail(err)
			return nil, err
		}
		all[r] = in
	}
	return all, nil
}

// sumAt0 gathers every rank's bytes at rank 0 and folds them in with add in
// rank order (the same sum allReduce makes); nil on the other ranks.
func (g *group) sumAt0(local []byte, add func(acc, in []byte) error, what string) ([]byte, error) {
	all, err := g.gather(local, len(local), what)
	if err != nil || g.rank != 0 {
		return nil, err
	}
	acc := append([]byte(nil), local...)
	for _, in := range all[1:] {
		if err := add(acc, in); err != nil {
			return nil, err
		}
	}
	return acc, nil
}

// reduce sums every rank's bytes in rank order and returns the sum on root
// (nil elsewhere): rank 0 sends it to root alone.
func (g *group) reduce(local []byte, root int, add func(acc, in []byte) error) ([]byte, error) {
	if g.world == 1 {
		return local, nil
	}
	acc, err := g.sumAt0(local, add, "reduce")
	if err != nil {
		return nil, err
	}
	switch {
	case g.rank == 0 && root == 0:
		return acc, nil
	case g.rank == 0:
		return nil, g.sendTo(root, acc)
	case g.rank == root:
		return g.recvFrom(0)
	}
	return nil, nil
}

// reduceScatter sums every rank's bytes in rank order and returns to each
// rank r its byte range [b[r], b[r+1]) of the sum.
func (g *group) reduceScatter(local []byte, b []int, add func(acc, in []byte) error) ([]byte, error) {
	if g.world == 1 {
		return local[b[0]:b[1]], nil
	}
	acc, err := g.sumAt0(local, add, "reduce-scatter")
	if err != nil {
		return nil, err
	}
	if g.rank != 0 {
		return g.recvFrom(0)
	}
	for r := 1; r < g.world; r++ {
		if err := g.sendTo(r, acc[b[r]:b[r+1]]); err != nil {
			return nil, err
		}
	}
	return acc[b[0]:b[1]], nil
}

// allGather concatenates every rank's bytes in rank order (rank r's must be
// n[r] long) and returns the whole to every rank.
func (g *group) allGather(local []byte, n []int) ([]byte, error) {
	if g.world == 1 {
		return local, nil
	}
	all, err := g.gather(local, -1, "all-gather")
	if err != nil {
		return nil, err
	}
	if g.rank != 0 {
		return g.recvFrom(0)
	}
	var out []byte
	for r, in := range all {
		if len(in) != n[r] {
			err := fmt.Errorf("all-gather: rank %d sent %d bytes, want %d (ranks out of step)", r, len(in), n[r])
			g.fail(err)
			return nil, err
		}
		out = append(out, in...)
	}
	for r := 1; r < g.world; r++ {
		if err := g.sendTo(r, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}
