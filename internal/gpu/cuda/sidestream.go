//go:build linux && (amd64 || arm64)

package cuda

import "fmt"

// sideStream is a second stream on a backend's device, for work that runs
// concurrently with the kernels of the compute stream (NCCL collectives
// overlapped with backward, nccl.go), ordered against it by events: fork
// makes the side stream wait for what the compute stream has queued, join
// makes the compute stream wait for what the side stream has queued.
type sideStream struct {
	c      *Backend
	stream uintptr
}

// newSideStream creates a non-blocking stream on c's device; close it
// before c.
func (c *Backend) newSideStream() (*sideStream, error) {
	s := &sideStream{c: c}
	err := c.dev.Do(func() error {
		return cuCheck(cu.StreamCreate(&s.stream, cuStreamNonBlocking), "cuStreamCreate(side stream)")
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// fork runs f on the device thread with the side stream, after making that
// stream wait for all the work queued on the compute stream so far, and
// returns an event recorded on the side stream after f's work, for join.
func (s *sideStream) fork(f func(side uintptr) error) (done uintptr, err error) {
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

// join makes the compute stream wait for the side stream's work up to done
// (an event from fork) and releases done; it does not block the host.
func (s *sideStream) join(done uintptr) error {
	if done == 0 {
		return fmt.Errorf("cuda: join on no event")
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

// close waits for the side stream's work and destroys the stream.
func (s *sideStream) close() error {
	return s.c.dev.Do(func() error {
		err := cuCheck(cu.StreamSynchronize(s.stream), "cuStreamSynchronize(side stream)")
		if derr := cuCheck(cu.StreamDestroy(s.stream), "cuStreamDestroy_v2(side stream)"); err == nil {
			err = derr
		}
		return err
	})
}
