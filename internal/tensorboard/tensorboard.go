// Package tensorboard writes TensorBoard event files (train.tensorboard):
// a run's scalars beside metrics.jsonl, in the format TensorBoard reads
// (TFRecord framing of tensorflow.Event protobufs), written by hand: a few
// fields of two messages do not need a protobuf library.
//
//	record: uint64 length, uint32 masked CRC-32C of length, data, uint32 masked CRC-32C of data
//	Event:      1 wall_time double, 2 step int64, 3 file_version string, 5 summary, 6 session_log
//	Summary:    1 value (repeated) Value
//	Value:      1 tag string, 2 simple_value float
//	SessionLog: 1 status enum (START = 1)
package tensorboard

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maskedCRC is TFRecord's masked CRC-32C.
func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return (c>>15 | c<<17) + 0xa282ead8
}

// Writer appends events to one event file.
type Writer struct {
	f  *os.File
	bw *bufio.Writer
}

// Open starts an event file in dir. A run resumed after step
// `after` marks its start with SessionLog START at after+1, which makes
// TensorBoard drop the events an interrupted run logged past its last
// checkpoint (they are logged again), as metrics.jsonl drops its lines.
func Open(dir string, after int) (*Writer, error) {
	host, _ := os.Hostname()
	now := time.Now()
	// As PyTorch names them; the counter keeps two starts in one second apart.
	var f *os.File
	var err error
	for i := 0; f == nil; i++ {
		name := fmt.Sprintf("events.out.tfevents.%d.%s.%d.%d", now.Unix(), host, os.Getpid(), i)
		f, err = os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil && (!os.IsExist(err) || i > 100) {
			return nil, fmt.Errorf("tensorboard: %w", err)
		}
	}
	w := &Writer{f: f, bw: bufio.NewWriter(f)}
	wall := float64(now.UnixNano()) / 1e9
	ev := pbDouble(nil, 1, wall)
	ev = pbBytes(ev, 3, []byte("brain.Event:2"))
	if err := w.record(ev); err != nil {
		return nil, err
	}
	if after > 0 {
		ev = pbVarint(pbDouble(nil, 1, wall), 2, uint64(after+1))
		ev = pbBytes(ev, 6, pbVarint(nil, 1, 1))
		if err := w.record(ev); err != nil {
			return nil, err
		}
	}
	return w, w.bw.Flush()
}

// Scalars writes one event of step holding each value under its tag
// (tags sorted, so the file depends only on the values).
func (w *Writer) Scalars(step int, vals map[string]float64) error {
	tags := make([]string, 0, len(vals))
	for k := range vals {
		tags = append(tags, k)
	}
	sort.Strings(tags)
	var summary []byte
	for _, tag := range tags {
		v := pbBytes(nil, 1, []byte(tag))
		v = binary.LittleEndian.AppendUint32(append(v, 2<<3|5), math.Float32bits(float32(vals[tag])))
		summary = pbBytes(summary, 1, v)
	}
	ev := pbVarint(pbDouble(nil, 1, float64(time.Now().UnixNano())/1e9), 2, uint64(step))
	if err := w.record(pbBytes(ev, 5, summary)); err != nil {
		return err
	}
	return w.bw.Flush() // TensorBoard reads the file as it grows
}

// record appends one TFRecord: the length, its CRC, data, data's CRC.
func (w *Writer) record(data []byte) error {
	var head [12]byte
	binary.LittleEndian.PutUint64(head[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(head[8:], maskedCRC(head[:8]))
	w.bw.Write(head[:])
	w.bw.Write(data)
	_, err := w.bw.Write(binary.LittleEndian.AppendUint32(nil, maskedCRC(data)))
	if err != nil {
		return fmt.Errorf("tensorboard: %w", err)
	}
	return nil
}

// Close flushes and closes the file; a nil Writer closes nothing.
func (w *Writer) Close() error {
	if w == nil {
		return nil
	}
	err := w.bw.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Protobuf wire format: a field's key is its number << 3 | wire type.

// pbVarint appends a varint field.
func pbVarint(b []byte, field int, v uint64) []byte {
	return binary.AppendUvarint(binary.AppendUvarint(b, uint64(field<<3)), v)
}

// pbDouble appends a double (fixed64) field.
func pbDouble(b []byte, field int, v float64) []byte {
	return binary.LittleEndian.AppendUint64(binary.AppendUvarint(b, uint64(field<<3|1)), math.Float64bits(v))
}

// pbBytes appends a length-delimited field.
func pbBytes(b []byte, field int, v []byte) []byte {
	b = binary.AppendUvarint(binary.AppendUvarint(b, uint64(field<<3|2)), uint64(len(v)))
	return append(b, v...)
}
