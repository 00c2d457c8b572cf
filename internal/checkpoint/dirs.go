package checkpoint

// The step directories under a run's checkpoints/: listed, pruned, and set
// aside by a rollback.

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// stepDir is a checkpoints/step-N directory, complete or not.
type stepDir struct {
	step int
	path string
}

// stepDirs returns the step directories under root, oldest first.
// Temporary (.tmp-step-N) and replaced (.old-step-N) ones are skipped.
func stepDirs(root string) ([]stepDir, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []stepDir
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, "step-") {
			continue
		}
		step, err := strconv.Atoi(strings.TrimPrefix(name, "step-"))
		if err != nil {
			continue
		}
		out = append(out, stepDir{step, filepath.Join(root, name)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].step < out[j].step })
	return out, nil
}

// missingFiles lists the names among files that dir lacks.
func missingFiles(dir string, files []string) []string {
	var out []string
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			out = append(out, f)
		}
	}
	return out
}

// list returns the complete step directories under root, oldest
// first. Temporary and partial directories are skipped.
func list(root string) ([]string, error) {
	all, err := stepDirs(root)
	var out []string
	for _, d := range all {
		if len(missingFiles(d.path, ckptFiles)) == 0 {
			out = append(out, d.path)
		}
	}
	return out, err
}

// prune keeps the newest keep complete checkpoints under root.
func prune(root string, keep int) error {
	cks, err := list(root)
	if err != nil {
		return err
	}
	for i := 0; i+keep < len(cks); i++ {
		if err := os.RemoveAll(cks[i]); err != nil {
			return err
		}
	}
	return nil
}

// Latest returns the newest complete checkpoint under root, or ""
// when there is none.
func Latest(root string) (string, error) {
	cks, err := list(root)
	if err != nil || len(cks) == 0 {
		return "", err
	}
	return cks[len(cks)-1], nil
}

// Before returns the newest complete checkpoint under root from
// before step, or "" when there is none.
func Before(root string, step int) (string, error) {
	cks, err := list(root)
	if err != nil {
		return "", err
	}
	best := ""
	for _, c := range cks {
		if n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(c), "step-")); err == nil && n < step {
			best = c
		}
	}
	return best, nil
}

// SetAside moves the checkpoints after step, those of a stretch a rollback
// abandoned (the n-th), to root/rolled-back-N, where --resume does not
// look.
func SetAside(root string, step, n int) error {
	cks, err := list(root)
	if err != nil {
		return err
	}
	aside := filepath.Join(root, fmt.Sprintf("rolled-back-%d", n))
	for i := 2; ; i++ { // a rollback replayed after a crash sets its stretch aside again
		if _, err := os.Lstat(aside); os.IsNotExist(err) {
			break
		}
		aside = filepath.Join(root, fmt.Sprintf("rolled-back-%d.%d", n, i))
	}
	for _, c := range cks {
		s, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(c), "step-"))
		if err != nil || s <= step {
			continue
		}
		if err := os.MkdirAll(aside, 0o755); err != nil {
			return err
		}
		if err := os.Rename(c, filepath.Join(aside, filepath.Base(c))); err != nil {
			return err
		}
	}
	return syncDir(root)
}
