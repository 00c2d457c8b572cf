//go:build linux && (amd64 || arm64)

package cuda

import "fmt"

// SideStream is a second stream on a backend's device, for work that runs
// concurrently with the kernels of the compute stream (NCCL collectives
// overlapped with backward, internal/dist), ordered against it by events:
// Fork makes the side stream wait for what the compute stream has queued,
// Join makes the compute stream wait for what the side stream has queued.
type SideStream struct {
	c      *Backend
	stream uintptr
}

// NewSideStream creates a non-blocking stream on c's device; Close it
// before c.
func (c *Backend) NewSideStream() (*SideStream, error) {
	s := &SideStream{c: c}
	err := c.dev.Do(func() error {
		return cuCheck(cu.StreamCreate(&s.stream, cuStreamNonBlocking), "cuStreamCreate(side stream)")
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Fork runs f on the device thread with the side stream, after making that
// stream wait for all the work queued on the compute stream so far, and
// returns an event recorded on the side stream after f's work, for Join.
func (s *SideStream) Fork(f func(side uintptr) error) (done uintptr, err error) {
	err = s.c.dev.Do(func() error {
		// A step being recorded for a graph has not reached the stream yet;
		// the side stream must see it there before it waits.
		if err := s.c.dev.flushRecording(); err != nil {
			return err
		}
		var ready uintptr
		if err := cuCheck(cu.EventCreate(&ready, cuEventNoTiming), "cuEventCreate"); err != nil {
			return err
		}
		// A destroyed event's pending record and waits still complete.
		defer cu.EventDestroy(ready)
		if err := cuCheck(cu.EventRecord(ready, s.c.dev.stream), "cuEventRecord(compute stream)"); err != nil {
			return err
		}
		if err := cuCheck(cu.StreamWaitEvent(s.stream, ready, cuEventWaitDefault), "cuStreamWaitEvent(side stream)"); err != nil {
			return err
		}
		if err := f(s.stream); err != nil {
			return err
		}
		if err := cuCheck(cu.EventCreate(&done, cuEventNoTiming), "cuEventCreate"); err != nil {
			return err
		}
		if err := cuCheck(cu.EventRecord(done, s.stream), "cuEventRecord(side stream)"); err != nil {
			cu.EventDestroy(done)
			done = 0
			return err
		}
		return nil
	})
	return done, err
}

// Join makes the compute stream wait for the side stream's work up to done
// (an event from Fork) and releases done; it does not block the host.
func (s *SideStream) Join(done uintptr) error {
	if done == 0 {
		return fmt.Errorf("cuda: Join on no event")
	}
	return s.c.dev.Do(func() error {
		if err := s.c.dev.flushRecording(); err != nil { // keep the compute stream in host order
			cu.EventDestroy(done)
			return err
		}
		err := cuCheck(cu.StreamWaitEvent(s.c.dev.stream, done, cuEventWaitDefault), "cuStreamWaitEvent(compute stream)")
		cu.EventDestroy(done)
		return err
	})
}

// Close waits for the side stream's work and destroys the stream.
func (s *SideStream) Close() error {
	return s.c.dev.Do(func() error {
		err := cuCheck(cu.StreamSynchronize(s.stream), "cuStreamSynchronize(side stream)")
		if derr := cuCheck(cu.StreamDestroy(s.stream), "cuStreamDestroy_v2(side stream)"); err == nil {
			err = derr
		}
		return err
	})
}
