package checkpoint

// A run directory (--out) belongs to one run. ClaimRunDir refuses a path
// that is a file, refuses a directory that already holds a run unless the
// run is resumed (or --overwrite moves the old run aside, never deleting
// it), and holds an exclusive flock on DIR/.lock for the run's life so two
// processes can never write into one directory. flock is released by the
// kernel when a process dies, so a lock left by a killed run is never stale.
//
// Nothing of a run is written through a link out of --out: the lock is
// opened with O_NOFOLLOW, a symbolic link (or a FIFO, a directory) where a
// run writes a file is refused, and files are replaced by writing a fresh
// temporary file and renaming it, which replaces a link instead of
// following it.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/data"
)

const lockFile = ".lock"

// runOutputs are the names whose presence makes a directory a run.
var runOutputs = []string{"metrics.jsonl", "memreport.json", "checkpoints"}

// RunDir is a claimed run directory.
type RunDir struct {
	path    string
	lock    *os.File
	created bool // the directory did not exist before this run
}

// ClaimRunDir prepares dir for a run (see the file comment). logf reports
// a move aside.
func ClaimRunDir(dir string, resume, overwrite bool, logf func(string, ...any)) (*RunDir, error) {
	if dir == "" {
		return nil, config.Usagef("--out DIR is required")
	}
	if resume && overwrite {
		return nil, config.Usagef("--resume and --overwrite exclude each other: resume continues the run in %s, overwrite moves it aside", dir)
	}
	st, err := os.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return nil, config.Usagef("--out %s is a file, not a directory", dir)
	case errors.Is(err, os.ErrNotExist) && isSymlink(dir):
		target, _ := os.Readlink(dir)
		return nil, config.Usagef("--out %s is a symbolic link to %s, which does not exist: create %s first, or choose another --out", dir, target, target)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return nil, config.Usagef("--out %s: %w", dir, err)
	}
	if err == nil {
		if err := checkRunEntries(dir); err != nil {
			return nil, err
		}
	}
	if err == nil && !resume && holdsRun(dir) {
		if !overwrite {
			return nil, config.Usagef("--out %s already holds a run (metrics.jsonl, memreport.json or checkpoints/): "+
				"continue it with --resume, choose another --out, or pass --overwrite to move it aside to %s.old-TIMESTAMP", dir, dir)
		}
		if holdsWorkingDir(dir) {
			return nil, config.Usagef("--overwrite: --out %s is the current directory or holds it: moving it aside would leave this shell in the old run; "+
				"run from its parent (cd ..; --out NAME), or move the old run aside yourself", dir)
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
	r := &RunDir{path: dir}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		r.created = true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, config.Usagef("--out %s: %w", dir, err)
	}
	if r.lock, err = lockDir(dir); err != nil {
		r.Release(false)
		return nil, err
	}
	return r, nil
}

// runEntries are the names a run writes directly in --out; the last is a
// directory.
var runEntries = []string{lockFile, "metrics.jsonl", "metrics.jsonl.tmp", "memreport.json", "memreport.json.tmp", "checkpoints"}

// checkRunEntries refuses a symbolic link, or an entry of the wrong kind,
// where the run in dir will write: writing through a link would change a
// file outside --out (and pruning checkpoints through a linked checkpoints/
// would delete another run's).
func checkRunEntries(dir string) error {
	for _, name := range runEntries {
		p, isDir := filepath.Join(dir, name), name == "checkpoints"
		st, err := os.Lstat(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue
		case err != nil:
			return config.Usagef("--out %s: %w", dir, err)
		case st.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			return config.Usagef("--out %s: %s is a symbolic link (to %s); a run writes only inside --out, never through a link: "+
				"remove the link (to keep a run on another disk, make --out itself the link)", dir, p, target)
		case isDir && !st.IsDir():
			return config.Usagef("--out %s: %s is %s, not a directory", dir, p, data.FileKind(st.Mode()))
		case !isDir && !st.Mode().IsRegular():
			return config.Usagef("--out %s: %s is %s, not a regular file: remove it", dir, p, data.FileKind(st.Mode()))
		}
	}
	return nil
}

// links is the number of names of a file (1 where the platform does not say).
func links(st os.FileInfo) uint64 {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(sys.Nlink)
	}
	return 1
}

func isSymlink(path string) bool {
	st, err := os.Lstat(path)
	return err == nil && st.Mode()&os.ModeSymlink != 0
}

// holdsWorkingDir reports whether dir is the working directory or one of
// its ancestors.
func holdsWorkingDir(dir string) bool {
	wd, err := os.Getwd()
	if err != nil {
		return false
	}
	real := func(p string) string {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		a, _ := filepath.Abs(p)
		return a
	}
	d, w := real(dir), real(wd)
	return d == w || strings.HasPrefix(w, d+string(filepath.Separator)) || d == string(filepath.Separator)
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
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o644)
	if errors.Is(err, syscall.ELOOP) {
		target, _ := os.Readlink(path)
		return nil, config.Usagef("--out %s: the lock file %s is a symbolic link (to %s); a run never writes through a link out of --out: remove it", dir, path, target)
	}
	if err != nil {
		return nil, config.Usagef("--out %s: lock file %s: %w", dir, path, err)
	}
	// The lock is truncated to record this process: a FIFO or a file with
	// another name elsewhere (a hard link) must not be.
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() || links(st) > 1 {
		f.Close()
		return nil, config.Usagef("--out %s: the lock file %s is not a plain file of this run (a FIFO, device or hard link): remove it", dir, path)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		who := "another process"
		if pid, err := strconv.Atoi(strings.TrimSpace(string(holder))); err == nil {
			who = fmt.Sprintf("process %d", pid)
		}
		return nil, config.Usagef("--out %s is in use by %s (lock %s): wait for it to finish or choose another --out", dir, who, path)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// Release drops the lock. When the run failed and this run created the
// directory, nothing of it is left behind if it holds nothing but the lock.
func (r *RunDir) Release(failed bool) {
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

// ClaimResume returns whether ClaimRunDir should take out as a run being
// continued (resume: --resume, from: its PATH if given). A --resume PATH
// outside --out starts a new run there that continues PATH (a fork), so
// --out must not hold a run of its own unless overwrite moves it aside.
func ClaimResume(out, from string, resume, overwrite bool) (bool, error) {
	if from == "" {
		return resume, nil
	}
	if within(from, out) {
		return true, nil
	}
	if holdsRun(out) && !overwrite {
		return false, config.Usagef("--resume %s is not a checkpoint of --out %s, which already holds a run: continue %s in a new --out, "+
			"pass --overwrite to move the run in %s aside, or resume one of %s", from, out, from,
			out, filepath.Join(out, "checkpoints"))
	}
	return false, nil
}

// within reports whether path is dir or lies under it, links resolved.
func within(path, dir string) bool {
	real := func(p string) (string, bool) {
		r, err := filepath.EvalSymlinks(p)
		if err != nil {
			return "", false
		}
		r, err = filepath.Abs(r)
		return r, err == nil
	}
	p, ok1 := real(path)
	d, ok2 := real(dir)
	return ok1 && ok2 && (p == d || strings.HasPrefix(p, d+string(filepath.Separator)))
}
