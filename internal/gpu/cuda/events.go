//go:build linux && (amd64 || arm64)

package cuda

// Timing events on the device's stream (profile.go times kernels with them).

// NewEvent creates a timing event (CU_EVENT_DEFAULT). Release it with
// DestroyEvent.
func (d *device) NewEvent() (uintptr, error) {
	var ev uintptr
	err := d.Do(func() error { return cuCheck(cu.EventCreate(&ev, cuEventDefault), "cuEventCreate") })
	return ev, err
}

// RecordEvent records ev on the device's stream.
func (d *device) RecordEvent(ev uintptr) error {
	return d.Do(func() error {
		if err := d.flushRecording(); err != nil {
			return err
		}
		return cuCheck(cu.EventRecord(ev, d.stream), "cuEventRecord")
	})
}

// ElapsedMs waits for end and returns the milliseconds between the two
// recorded events.
func (d *device) ElapsedMs(start, end uintptr) (float32, error) {
	var ms float32
	err := d.Do(func() error {
		if err := d.flushRecording(); err != nil {
			return err
		}
		if err := cuCheck(cu.EventSynchronize(end), "cuEventSynchronize"); err != nil {
			return err
		}
		return cuCheck(cu.EventElapsedTime(&ms, start, end), "%s", cu.eventElapsedName)
	})
	return ms, err
}

// DestroyEvent releases an event from NewEvent.
func (d *device) DestroyEvent(ev uintptr) error {
	if ev == 0 {
		return nil
	}
	return d.Do(func() error { return cuCheck(cu.EventDestroy(ev), "cuEventDestroy_v2") })
}
