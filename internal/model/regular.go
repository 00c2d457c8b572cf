package model

import (
	"bytes"
	"fmt"
	"os"
)

// checkRegular refuses path unless it is a regular file: opening a FIFO
// blocks until a writer appears and a device such as /dev/zero never ends,
// so a checkpoint file that is either would hang eval, sample or a resume.
// (internal/data guards shards the same way; model does not import data.)
func checkRegular(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	kind := "a device or other special file"
	switch m := st.Mode(); {
	case m.IsRegular():
		return nil
	case m.IsDir():
		kind = "a directory"
	case m&os.ModeNamedPipe != 0:
		kind = "a named pipe (FIFO)"
	}
	return fmt.Errorf("%s is %s, not a regular file", path, kind)
}

// readRegular reads the regular file path without a leading UTF-8 byte
// order mark, which Windows editors add and JSON decoders refuse.
func readRegular(path string) ([]byte, error) {
	if err := checkRegular(path); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(path)
	return bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf")), err
}
