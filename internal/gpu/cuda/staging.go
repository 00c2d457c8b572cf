//go:build linux && (amd64 || arm64)

// Asynchronous host-to-device uploads through pinned staging buffers, so
// that uploading a micro-batch's tokens does not wait for the GPU to drain
// (a copy from pageable memory is synchronous).
package cuda

import (
	"errors"
	"fmt"
	"unsafe"
)

// stagingSlots is the number of pinned buffers HtoDAsync cycles through. A
// training micro-batch uploads two tensors (tokens, targets), so four slots
// double-buffer it: the host fills one micro-batch's pair while the copies
// of the previous pair may still be queued.
const stagingSlots = 4

// stagingSlot is one pinned host buffer and the event recorded behind the
// last copy out of it.
type stagingSlot struct {
	host  unsafe.Pointer // cuMemHostAlloc; nil until first use
	bytes int64
	ev    uintptr // CU_EVENT_DISABLE_TIMING; 0 until first use
	busy  bool    // ev was recorded after a copy not yet known to be done
}

// hostStaging is the ring of pinned buffers (device thread only).
type hostStaging struct {
	slots [stagingSlots]stagingSlot
	next  int
}

// HtoDAsync copies bytes from host memory src to device memory dst without
// waiting for the GPU: src is copied at once into a pinned staging buffer,
// so the caller may reuse it on return, and the DMA out of that buffer is
// queued on the stream, ordered with the kernels around it. A staging
// buffer is refilled only after the event recorded behind its previous copy
// has fired, so the host never overwrites data a queued copy has yet to
// read; that wait happens only when the host runs stagingSlots uploads ahead
// of the GPU. Pinned memory is host memory: it is not in MemStats.
func (d *device) HtoDAsync(dst uintptr, src unsafe.Pointer, bytes int64) error {
	if bytes == 0 {
		return nil
	}
	if bytes < 0 {
		return fmt.Errorf("cuda: HtoDAsync(%d bytes): negative size", bytes)
	}
	return d.Do(func() error { return d.submit(streamOp{kind: opHtoD, dst: dst, host: src, n: bytes}) })
}

// stagedHtoD is HtoDAsync on the device thread.
func (d *device) stagedHtoD(dst uintptr, src unsafe.Pointer, bytes int64) error {
	st := &d.staging
	s := &st.slots[st.next]
	if s.busy {
		if err := cuCheck(cu.EventSynchronize(s.ev), "cuEventSynchronize(staging slot %d)", st.next); err != nil {
			return err
		}
		s.busy = false
	}
	if s.bytes < bytes {
		if s.host != nil {
			if err := cuCheck(cu.MemFreeHost(s.host), "cuMemFreeHost(%d bytes)", s.bytes); err != nil {
				return err
			}
			s.host, s.bytes = nil, 0
		}
		if err := cuCheck(cu.MemHostAlloc(&s.host, uintptr(bytes), 0), "cuMemHostAlloc(%d bytes)", bytes); err != nil {
			s.host = nil
			return err
		}
		s.bytes = bytes
	}
	if s.ev == 0 {
		if err := cuCheck(cu.EventCreate(&s.ev, cuEventNoTiming), "cuEventCreate(CU_EVENT_DISABLE_TIMING)"); err != nil {
			s.ev = 0
			return err
		}
	}
	copy(unsafe.Slice((*byte)(s.host), bytes), unsafe.Slice((*byte)(src), bytes))
	if err := cuCheck(cu.MemcpyHtoDAsync(dst, s.host, uintptr(bytes), d.stream), "cuMemcpyHtoDAsync_v2(%d bytes, pinned)", bytes); err != nil {
		return err
	}
	if err := cuCheck(cu.EventRecord(s.ev, d.stream), "cuEventRecord(staging slot %d)", st.next); err != nil {
		return err
	}
	s.busy = true
	st.next = (st.next + 1) % stagingSlots
	return nil
}

// stagingRelease frees the pinned buffers and their events; the stream has
// been synchronised, so no copy still reads them. Device thread only.
func (d *device) stagingRelease() error {
	var errs []error
	for i := range d.staging.slots {
		s := &d.staging.slots[i]
		if s.ev != 0 {
			errs = append(errs, cuCheck(cu.EventDestroy(s.ev), "cuEventDestroy_v2(staging slot %d)", i))
		}
		if s.host != nil {
			errs = append(errs, cuCheck(cu.MemFreeHost(s.host), "cuMemFreeHost(%d bytes)", s.bytes))
		}
		*s = stagingSlot{}
	}
	return errors.Join(errs...)
}
