package data

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"syscall"
)

// OpenRegular opens path for reading and refuses anything but a regular
// file. A FIFO would block the open (or every read) until some writer
// appeared, and a device such as /dev/zero never ends, so neither is let
// through: the file is opened without blocking and checked with fstat
// before anything is read.
func OpenRegular(path string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("is %s, not a regular file", FileKind(st.Mode()))}
	}
	return f, st, nil
}

// ReadRegular reads the whole of the regular file path (see OpenRegular),
// without a leading UTF-8 byte order mark: editors on Windows write one, and
// JSON and YAML decoders would take it for a stray character.
func ReadRegular(path string) ([]byte, error) {
	f, _, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return TrimBOM(raw), nil
}

// utf8BOM is the UTF-8 encoding of U+FEFF.
var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// TrimBOM drops a leading UTF-8 byte order mark.
func TrimBOM(b []byte) []byte { return bytes.TrimPrefix(b, utf8BOM) }

// FileKind names what a non-regular file is, for messages.
func FileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "a special file"
}
