//go:build linux && (amd64 || arm64)

package cuda

// Device memory and copies: allocation, host-device and device-device
// copies and memsets, ordered on the device's stream.

import (
	"fmt"
	"unsafe"
)

// Malloc allocates bytes of device memory (cuMemAlloc_v2; 256-byte aligned).
func (d *device) Malloc(bytes int64) (uintptr, error) {
	if bytes <= 0 {
		return 0, fmt.Errorf("cuda: Malloc(%d bytes): size must be positive", bytes)
	}
	var p uintptr
	err := d.Do(func() error {
		return cuCheck(cu.MemAlloc(&p, uintptr(bytes)), "cuMemAlloc_v2(%d bytes)", bytes)
	})
	return p, err
}

// Free releases memory from Malloc; Free(0) does nothing. It first waits
// for the stream, since work queued there may still use the memory and
// cuda.h promises only that cuMemFree "may perform implicit synchronization".
// That makes Free a synchronisation point: keep it out of the step loop.
func (d *device) Free(ptr uintptr) error {
	if ptr == 0 {
		return nil
	}
	return d.Do(func() error {
		if err := d.flushRecording(); err != nil {
			return err
		}
		if err := cuCheck(cu.StreamSynchronize(d.stream), "cuStreamSynchronize before cuMemFree_v2"); err != nil {
			return err
		}
		return cuCheck(cu.MemFree(ptr), "cuMemFree_v2(%#x)", ptr)
	})
}

// MemGetInfo returns the driver's free and total device memory in bytes.
func (d *device) MemGetInfo() (free, total int64, err error) {
	var f, t uintptr
	err = d.Do(func() error { return cuCheck(cu.MemGetInfo(&f, &t), "cuMemGetInfo_v2") })
	return int64(f), int64(t), err
}

// HtoD copies bytes from host memory to device memory, ordered after the
// work already queued on the stream, and returns once the copy is complete.
func (d *device) HtoD(dst uintptr, src unsafe.Pointer, bytes int64) error {
	if bytes == 0 {
		return nil
	}
	if bytes < 0 {
		return fmt.Errorf("cuda: HtoD(%d bytes): negative size", bytes)
	}
	return d.Do(func() error {
		if err := d.flushRecording(); err != nil {
			return err
		}
		if err := cuCheck(cu.MemcpyHtoDAsync(dst, src, uintptr(bytes), d.stream), "cuMemcpyHtoDAsync_v2(%d bytes)", bytes); err != nil {
			return err
		}
		return cuCheck(cu.StreamSynchronize(d.stream), "cuStreamSynchronize after HtoD")
	})
}

// DtoH copies bytes from device memory to host memory after the work queued
// on the stream has finished, and returns once the data is on the host.
func (d *device) DtoH(dst unsafe.Pointer, src uintptr, bytes int64) error {
	if bytes == 0 {
		return nil
	}
	if bytes < 0 {
		return fmt.Errorf("cuda: DtoH(%d bytes): negative size", bytes)
	}
	return d.Do(func() error {
		if err := d.flushRecording(); err != nil {
			return err
		}
		if err := cuCheck(cu.MemcpyDtoHAsync(dst, src, uintptr(bytes), d.stream), "cuMemcpyDtoHAsync_v2(%d bytes)", bytes); err != nil {
			return err
		}
		return cuCheck(cu.StreamSynchronize(d.stream), "cuStreamSynchronize after DtoH")
	})
}

// DtoD queues a device-to-device copy on the stream.
func (d *device) DtoD(dst, src uintptr, bytes int64) error {
	if bytes == 0 {
		return nil
	}
	if bytes < 0 {
		return fmt.Errorf("cuda: DtoD(%d bytes): negative size", bytes)
	}
	return d.Do(func() error { return d.submit(streamOp{kind: opDtoD, dst: dst, src: src, n: bytes}) })
}

// MemsetD8 queues setting bytes bytes at dst to v on the stream.
func (d *device) MemsetD8(dst uintptr, v byte, bytes int64) error {
	if bytes <= 0 {
		return nil
	}
	return d.Do(func() error { return d.submit(streamOp{kind: opMemset8, dst: dst, n: bytes, val: uint32(v)}) })
}

// MemsetD32 queues setting n 32-bit words at dst (4-byte aligned) to v.
func (d *device) MemsetD32(dst uintptr, v uint32, n int64) error {
	if n <= 0 {
		return nil
	}
	return d.Do(func() error { return d.submit(streamOp{kind: opMemset32, dst: dst, n: n, val: v}) })
}
