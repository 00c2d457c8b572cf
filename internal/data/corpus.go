// This file holds the default corpus, used when a config names no data: the
// Go distribution's own sources under GOROOT/src, which exist on every
// machine that can build compact. They are tokenized on first use into a
// per-user cache and reused afterwards.

package data

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// DefaultCorpusBytes is the default text budget of the default corpus.
const DefaultCorpusBytes = 16 << 20

// corpusValEvery sends every 50th file of the default corpus to validation.
const corpusValEvery = 50

// corpusMaxFileBytes skips larger files: in GOROOT they are generated tables
// (SSA rewrite rules, tzdata blobs) that teach a model little.
const corpusMaxFileBytes = 256 << 10

// corpusFormatVersion is part of the cache key; bump it when the corpus
// selection or shard layout changes.
const corpusFormatVersion = "compact-corpus-v1"

// DefaultCacheDir returns $COMPACT_CACHE, or the user cache directory plus
// "compact" (e.g. ~/.cache/compact).
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("COMPACT_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache directory: %w (set COMPACT_CACHE)", err)
	}
	return filepath.Join(d, "compact"), nil
}

// GoRoot finds the Go distribution: `go env GOROOT`, then runtime.GOROOT(),
// then /usr/local/go; the first that holds src/ wins.
func GoRoot() (string, error) {
	var tried []string
	try := func(dir string) bool {
		if dir == "" {
			return false
		}
		tried = append(tried, dir)
		st, err := os.Stat(filepath.Join(dir, "src"))
		return err == nil && st.IsDir()
	}
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); try(d) {
			return d, nil
		}
	}
	//lint:ignore SA1019 the build-time root is only a fallback for a machine without `go` on PATH
	if d := runtime.GOROOT(); try(d) {
		return d, nil
	}
	if try("/usr/local/go") {
		return "/usr/local/go", nil
	}
	return "", fmt.Errorf("default corpus: no Go distribution found (tried `go env GOROOT`, runtime.GOROOT() and /usr/local/go: %s); install Go or give the config a data path",
		strings.Join(tried, ", "))
}

// goVersion reads GOROOT/VERSION, falling back to the running toolchain.
func goVersion(goroot string) string {
	if b, err := os.ReadFile(filepath.Join(goroot, "VERSION")); err == nil {
		if line, _, _ := strings.Cut(string(b), "\n"); strings.TrimSpace(line) != "" {
			return strings.TrimSpace(line)
		}
	}
	return runtime.Version()
}

type corpusFile struct {
	rel  string // slash path relative to GOROOT
	size int64
}

// corpusFiles lists GOROOT/src/**/*.go (no testdata or vendor directories,
// no file over corpusMaxFileBytes), sorted by path, up to maxBytes in total.
func corpusFiles(goroot string, maxBytes int64) ([]corpusFile, error) {
	var all []corpusFile
	src := filepath.Join(goroot, "src")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == src {
				return err
			}
			return nil // unreadable subtree: skip
		}
		if d.IsDir() {
			if n := d.Name(); p != src && (n == "testdata" || n == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(d.Name(), ".go") {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Size() == 0 || info.Size() > corpusMaxFileBytes {
			return nil
		}
		rel, err := filepath.Rel(goroot, p)
		if err != nil {
			return nil
		}
		all = append(all, corpusFile{rel: filepath.ToSlash(rel), size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("default corpus: walking %s: %w", src, err)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].rel < all[j].rel })
	var total int64
	for i, f := range all {
		if total+f.size > maxBytes {
			all = all[:i]
			break
		}
		total += f.size
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("default corpus: no Go source files under %s fit the %d-byte budget", src, maxBytes)
	}
	return all, nil
}

// CorpusMeta describes a cached corpus; it is stored as meta.json beside
// the shards.
type CorpusMeta struct {
	Version     string    `json:"version"`
	GoRoot      string    `json:"goroot"`
	GoVersion   string    `json:"go_version"`
	Tokenizer   string    `json:"tokenizer"`
	MaxBytes    int64     `json:"max_bytes"`
	Files       int       `json:"files"`
	Bytes       int64     `json:"bytes"`
	TrainTokens int64     `json:"train_tokens"`
	ValTokens   int64     `json:"val_tokens"`
	Seconds     float64   `json:"seconds"`
	Created     time.Time `json:"created"`
}

// DefaultCorpus returns globs for the train and validation shards of the
// default corpus (see DefaultCorpusDir); maxBytes <= 0 means
// DefaultCorpusBytes.
func DefaultCorpus(tok Tokenizer, maxBytes int64) (trainGlob, valGlob string, err error) {
	dir, err := DefaultCorpusDir(tok, maxBytes)
	if err != nil {
		return "", "", err
	}
	esc := escapeGlob(dir)
	return filepath.Join(esc, "train_*.bin"), filepath.Join(esc, "val_*.bin"), nil
}

// DefaultCorpusDir builds, or finds in the cache, the default corpus for tok
// and returns the directory holding train_000000.bin, val_000000.bin and
// meta.json. The directory is
// DefaultCacheDir()/corpus/<tokenizer>-<hash of Go version, file list, sizes
// and budget>; it is built in a temporary directory and renamed into place,
// so a crash never leaves a partial corpus.
func DefaultCorpusDir(tok Tokenizer, maxBytes int64) (string, error) {
	if tok == nil {
		return "", errors.New("default corpus: no tokenizer")
	}
	if maxBytes <= 0 {
		maxBytes = DefaultCorpusBytes
	}
	goroot, err := GoRoot()
	if err != nil {
		return "", err
	}
	files, err := corpusFiles(goroot, maxBytes)
	if err != nil {
		return "", err
	}
	version := goVersion(goroot)
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%d\n", corpusFormatVersion, version, tok.Name(), maxBytes)
	for _, f := range files {
		fmt.Fprintf(h, "%s\t%d\n", f.rel, f.size)
	}
	key := tok.Name() + "-" + hex.EncodeToString(h.Sum(nil))[:16]

	cache, err := DefaultCacheDir()
	if err != nil {
		return "", err
	}
	parent := filepath.Join(cache, "corpus")
	final := filepath.Join(parent, key)
	if corpusComplete(final) {
		return final, nil
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("default corpus: cache %s: %w", parent, err)
	}
	if _, err := os.Stat(final); err == nil { // incomplete (damaged by hand): rebuild
		if err := os.RemoveAll(final); err != nil {
			return "", fmt.Errorf("default corpus: removing incomplete cache %s: %w", final, err)
		}
	}
	tmp, err := os.MkdirTemp(parent, "."+key+".tmp-")
	if err != nil {
		return "", fmt.Errorf("default corpus: cache %s: %w", parent, err)
	}
	os.Chmod(tmp, 0o755)    // MkdirTemp makes 0700
	defer os.RemoveAll(tmp) // no-op after a successful rename

	start := time.Now()
	res, err := tokenizeDocs(TokenizeOptions{
		Tokenizer:   tok,
		OutDir:      tmp,
		ValEvery:    corpusValEvery,
		ShardTokens: 1<<31 - 1,
	}, corpusProducer(goroot, files), nil)
	if err != nil {
		return "", fmt.Errorf("default corpus: %w", err)
	}
	meta := CorpusMeta{
		Version: corpusFormatVersion, GoRoot: goroot, GoVersion: version, Tokenizer: tok.Name(),
		MaxBytes: maxBytes, Files: res.Documents, Bytes: res.Bytes,
		TrainTokens: res.TrainTokens, ValTokens: res.ValTokens,
		Seconds: time.Since(start).Seconds(), Created: time.Now().UTC(),
	}
	mb, _ := json.MarshalIndent(meta, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "meta.json"), append(mb, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("default corpus: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		if corpusComplete(final) { // another process finished first
			return final, nil
		}
		return "", fmt.Errorf("default corpus: installing cache %s: %w", final, err)
	}
	syncDir(parent)
	return final, nil
}

// corpusComplete reports whether dir holds a finished corpus.
func corpusComplete(dir string) bool {
	for _, name := range []string{"meta.json", "train_000000.bin", "val_000000.bin"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || !st.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// ReadCorpusMeta reads the meta.json of a corpus directory (files, bytes,
// tokens, build time), for reporting.
func ReadCorpusMeta(dir string) (CorpusMeta, error) {
	var m CorpusMeta
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return m, fmt.Errorf("corpus %s: %w", dir, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("corpus %s: meta.json: %w", dir, err)
	}
	return m, nil
}

// corpusProducer emits the corpus files as documents, in order.
func corpusProducer(goroot string, files []corpusFile) docProducer {
	return func(ctx context.Context, emit func(document) error, skip func()) error {
		for _, f := range files {
			if err := ctx.Err(); err != nil {
				return err
			}
			p := filepath.Join(goroot, filepath.FromSlash(f.rel))
			b, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("reading %s: %w", p, err)
			}
			if len(b) == 0 {
				skip()
				continue
			}
			if err := emit(document{text: string(b)}); err != nil {
				return err
			}
		}
		return nil
	}
}

// escapeGlob escapes filepath.Match metacharacters in a literal path.
func escapeGlob(p string) string {
	if !strings.ContainsAny(p, `*?[\`) || runtime.GOOS == "windows" {
		return p
	}
	var sb strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}
