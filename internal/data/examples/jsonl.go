package examples

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/compact-llm/compact/internal/data"
)

// maxJSONLLine is the longest JSONL row read (one example).
const maxJSONLLine = 64 << 20

// readJSONL calls fn with every non-blank line of every file; errors name
// the file and line. A leading byte order mark is dropped; FIFOs and
// devices are refused (they would block or never end).
func readJSONL(paths []string, fn func(file string, line int, raw []byte) error) error {
	for _, p := range paths {
		f, _, err := data.OpenRegular(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		err = scanJSONL(f, p, fn)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// scanJSONL is readJSONL of one open file.
func scanJSONL(r io.Reader, file string, fn func(file string, line int, raw []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), maxJSONLLine)
	line := 0
	for sc.Scan() {
		line++
		raw := sc.Bytes()
		if line == 1 {
			raw = data.TrimBOM(raw)
		}
		if raw = bytes.TrimSpace(raw); len(raw) == 0 {
			continue
		}
		if err := fn(file, line, raw); err != nil {
			return err
		}
	}
	switch err := sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		return fmt.Errorf("%s:%d: the line is longer than %d MiB, the most one example may take (is this a JSONL file, one JSON object per line?)",
			file, line+1, maxJSONLLine>>20)
	case err != nil:
		return fmt.Errorf("%s:%d: %w", file, line+1, err)
	}
	return nil
}
