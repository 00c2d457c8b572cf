package train

// A run directory (--out) belongs to one run. claimRunDir refuses a path
// that is a file, refuses a directory that already holds a run unless the
// run is resumed (or --overwrite moves the old run aside, never deleting
// it), and holds an exclusive flock on DIR/.lock for the run's life so two
// processes can never write into one directory. flock is released by the
// kernel when a process dies, so a lock left by a killed run is never stale.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const lockFile = ".lock"

// runOutputs are the names whose presence makes a directory a run.
var runOutputs = []string{"metrics.jsonl", "memreport.json", "checkpoints"}

// runDir is a claimed run directory.
type runDir struct {
	path    string
	lock    *os.File
	created bool // the directory did not exist before this run
}

// claimRunDir prepares dir for a run (see the file comment). logf reports a
// move aside.
func claimRunDir(dir string, resume, overwrite bool, logf func(string, ...any)) (*runDir, error) {
	if dir == "" {
		return nil, Usagef("--out DIR is required")
	}
	if resume && overwrite {
		return nil, Usagef("--resume and --overwrite exclude each other: resume continues the run in %s, overwrite moves it aside", dir)
	}
	st, err := os.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return nil, Usagef("--out %s is a file, not a directory", dir)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return nil, Usagef("--out %s: %w", dir, err)
	}
	if err == nil && !resume && holdsRun(dir) {
		if !overwrite {
			return nil, Usagef("--out %s already holds a run (metrics.jsonl, memreport.json or checkpoints/): "+
				"continue it with --resume, choose another --out, or pass --overwrite to move it aside to %s.old-TIMESTAMP", dir, dir)
		}
		// The old run's lock must be free: never move a live run.
		old, err := lockDir(dir)
		if err != nil {
			return nil, err
		}
		aside := fmt.Sprintf("%s.old-%s", filepath.Clean(dir), time.Now().Format("20060102-150405"))
		for i := 2; ; i++ { // never rename onto an earlier moved-aside run
			if _, err := os.Lstat(aside); errors.Is(err, os.ErrNotExist) {
				break
			}
			aside = fmt.Sprintf("%s.old-%s-%d", filepath.Clean(dir), time.Now().Format("20060102-150405"), i)
		}
		err = os.Rename(dir, aside)
		old.Close()
		if err != nil {
			return nil, fmt.Errorf("--overwrite: moving %s aside: %w", dir, err)
		}
		logf("--overwrite: moved the previous run to %s", aside)
	}
	r := &runDir{path: dir}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		r.created = true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, Usagef("--out %s: %w", dir, err)
	}
	if r.lock, err = lockDir(dir); err != nil {
		r.release(false)
		return nil, err
	}
	return r, nil
}

// holdsRun reports whether dir holds the outputs of a run.
func holdsRun(dir string) bool {
	for _, name := range runOutputs {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// lockDir takes the exclusive lock of dir, naming the holder's pid when
// another process has it.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, Usagef("--out %s: lock file %s: %w", dir, path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		who := "another process"
		if pid, err := strconv.Atoi(strings.TrimSpace(string(holder))); err == nil {
			who = fmt.Sprintf("process %d", pid)
		}
		return nil, Usagef("--out %s is in use by %s (lock %s): wait for it to finish or choose another --out", dir, who, path)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// release drops the lock. When the run failed and this run created the
// directory, nothing of it is left behind if it holds nothing but the lock.
func (r *runDir) release(failed bool) {
	if r == nil {
		return
	}
	if failed && r.created {
		entries, _ := os.ReadDir(r.path)
		if len(entries) == 1 && entries[0].Name() == lockFile {
			os.Remove(filepath.Join(r.path, lockFile))
			os.Remove(r.path)
		}
	}
	if r.lock != nil {
		r.lock.Close()
		r.lock = nil
	}
}
