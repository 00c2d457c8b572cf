package dist

// Liveness beyond a closed connection: a rank stopped (kill -STOP), frozen
// or cut off keeps its TCP connections open, and the others would wait for
// it in their next collective forever. So every rank sends each peer a
// heartbeat several times per stall limit, from its own goroutine (a rank
// busy computing, writing a checkpoint or waiting still beats), and a
// peer from which no byte at all arrived for the limit ends the job: the
// group fails naming it, which aborts a device communicator stuck on it
// and, from rank 0, tells every other rank.

import (
	"time"
)

// beatEvery is the heartbeat (and watch) period for a stall limit: six
// beats fit in it, so a few late ones are no stall.
func beatEvery(stall time.Duration) time.Duration {
	return min(max(stall/6, 10*time.Millisecond), 5*time.Second)
}

// progressReader marks its peer heard whenever bytes arrive, so a payload
// that takes long to arrive is progress, not silence.
type progressReader struct {
	g *group
	p *peer
}

func (r progressReader) Read(b []byte) (int, error) {
	n, err := r.p.conn.Read(b)
	if n > 0 {
		r.p.heard.Store(int64(time.Since(r.g.epoch)))
	}
	return n, err
}

// startLiveness starts one heartbeat per peer and the watch, when a stall
// limit is set.
func (g *group) startLiveness() {
	if g.stall <= 0 {
		return
	}
	every := beatEvery(g.stall)
	for _, p := range g.peers {
		if p != nil {
			go g.beat(p, every)
		}
	}
	go g.watch(every)
}

// stopLiveness ends the heartbeats and the watch (the group is leaving or
// shut).
func (g *group) stopLiveness() {
	g.quitOnce.Do(func() { close(g.quit) })
}

// beat sends p a heartbeat every period until the group stops or the
// connection fails (a send blocked by a peer that reads nothing waits for
// the connection's close or the failure's write deadline).
func (g *group) beat(p *peer, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-g.quit:
			return
		case <-p.done:
			return
		case <-t.C:
			if p.send(frameBeat, nil) != nil {
				return
			}
		}
	}
}

// watch fails the group when a peer has been silent for the stall limit.
// A watch that itself ran late by half the limit (this process was stopped
// or starved) judges nobody for that round: every peer counts as heard.
func (g *group) watch(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Since(g.epoch)
	for {
		select {
		case <-g.quit:
			return
		case <-g.failed:
			return
		case <-t.C:
		}
		now := time.Since(g.epoch)
		late := now-last > g.stall/2
		last = now
		for _, p := range g.peers {
			if p == nil || p.delivering.Load() || g.isClosed() {
				continue
			}
			select {
			case <-p.done: // closed: the reader reports it
				continue
			default:
			}
			if late {
				p.heard.Store(int64(now))
				continue
			}
			if now-time.Duration(p.heard.Load()) > g.stall {
				g.fail(&StallError{Rank: p.rank, After: g.stall, Setting: g.stallName})
				return
			}
		}
	}
}
