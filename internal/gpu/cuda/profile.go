//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"io"
	"sort"
)

// kernelProfile times every kernel launch and GEMM with device events when
// enabled (compact bench --profile): a per-kernel table of where a step's
// device time goes. Off, it costs one nil check per launch.
type kernelProfile struct {
	events []profEvent
	free   []uintptr
}

type profEvent struct {
	name       string
	start, end uintptr
}

// StartProfile begins timing every launch.
func (c *Backend) StartProfile() { c.prof = &kernelProfile{} }

func (c *Backend) event() uintptr {
	p := c.prof
	if n := len(p.free); n > 0 {
		ev := p.free[n-1]
		p.free = p.free[:n-1]
		return ev
	}
	ev, err := c.dev.NewEvent()
	must(err)
	return ev
}

// timed runs f between two recorded events when profiling.
func (c *Backend) timed(name string, f func()) {
	if c.prof == nil {
		f()
		return
	}
	s, e := c.event(), c.event()
	must(c.dev.RecordEvent(s))
	f()
	must(c.dev.RecordEvent(e))
	c.prof.events = append(c.prof.events, profEvent{name, s, e})
}

// StopProfile writes the per-kernel totals, largest first, and stops timing.
func (c *Backend) StopProfile(w io.Writer, steps int) error {
	if err := c.dev.Sync(); err != nil {
		return err
	}
	type row struct {
		name  string
		n     int
		total float64
	}
	byName := map[string]*row{}
	var all float64
	for _, ev := range c.prof.events {
		ms, err := c.dev.ElapsedMs(ev.start, ev.end)
		if err != nil {
			return err
		}
		r := byName[ev.name]
		if r == nil {
			r = &row{name: ev.name}
			byName[ev.name] = r
		}
		r.n++
		r.total += float64(ms)
		all += float64(ms)
		c.prof.free = append(c.prof.free, ev.start, ev.end)
	}
	rows := make([]*row, 0, len(byName))
	for _, r := range byName {
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].total > rows[j].total })
	fmt.Fprintf(w, "%-40s %8s %10s %6s\n", "kernel", "calls", "ms/step", "share")
	for _, r := range rows {
		fmt.Fprintf(w, "%-40s %8d %10.3f %5.1f%%\n", r.name, r.n/steps, r.total/float64(steps), 100*r.total/all)
	}
	fmt.Fprintf(w, "%-40s %8s %10.3f\n", "total kernel time", "", all/float64(steps))
	for _, ev := range c.prof.free {
		c.dev.DestroyEvent(ev)
	}
	c.prof = nil
	return nil
}
