package checkpoint

// Writing files in a run directory: never through a link out of it, and
// durably where a crash must leave either the old file or the new one.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// writeSynced creates path, lets write fill it, and fsyncs it.
func writeSynced(path string, write func(io.Writer) error) error {
	f, err := createFresh(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	var pe *os.PathError
	if err != nil && !errors.As(err, &pe) { // a file system error names the file already
		return fmt.Errorf("write %s: %w", path, err)
	}
	return err
}

// syncDir makes the entries of dir (a rename into it) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ReplaceFile writes body to path through a fresh temporary file renamed
// over it: a link at path is replaced, never written through.
func ReplaceFile(path string, body []byte) error {
	tmp := path + ".tmp"
	f, err := createFresh(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// createFresh creates path for writing as a new file: whatever was left
// there (a file of a crashed run, a link) is removed first, not followed.
func createFresh(path string) (*os.File, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
}
