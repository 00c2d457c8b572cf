//go:build linux && (amd64 || arm64)

// CUDA library discovery and symbol binding: finds libcuda, libnvrtc and
// libcublasLt at run time (no cgo, no toolkit at build time), dlopens them
// with purego and binds their C functions to typed Go function variables.
package cuda

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Candidate file names, most preferred first. A name holding '*' is a glob,
// matched in each search directory (never handed to dlopen as-is).
var (
	cudaDriverLibNames = []string{"libcuda.so.1"}
	nvrtcLibNames      = []string{"libnvrtc.so.13", "libnvrtc.so.13.*", "libnvrtc.so.12", "libnvrtc.so.12.*"}
	cublasLtLibNames   = []string{"libcublasLt.so.13", "libcublasLt.so.13.*", "libcublasLt.so.12", "libcublasLt.so.12.*"}
)

// cudaLibraryDirs lists, in order, the directories findLibrary looks in
// before it falls back to a plain dlopen of the soname (the loader's own
// path: LD_LIBRARY_PATH, ld.so.cache, the default directories).
func cudaLibraryDirs() []string {
	var dirs []string
	if home := os.Getenv("CUDA_HOME"); home != "" {
		dirs = append(dirs, filepath.Join(home, "lib64"), filepath.Join(home, "lib"))
	}
	dirs = append(dirs, "/usr/local/cuda/lib64")
	if runtime.GOARCH == "arm64" {
		dirs = append(dirs, "/usr/lib/aarch64-linux-gnu")
	} else {
		dirs = append(dirs, "/usr/lib/x86_64-linux-gnu")
	}
	return append(dirs, "/usr/lib64", "/usr/lib")
}

// cudaLib is one dlopened library.
type cudaLib struct {
	what   string // human name, e.g. "NVRTC"
	path   string // what was dlopened
	handle uintptr
}

// findLibrary dlopens the first of names that can be found: each search
// directory is tried for every candidate (globs newest version first), then
// each plain soname through the loader. The error names the library and every
// path tried with the reason each failed.
func findLibrary(what string, names []string) (*cudaLib, error) {
	var tried []string
	try := func(path string) (*cudaLib, bool) {
		h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s (dlopen: %v)", path, err))
			return nil, false
		}
		return &cudaLib{what: what, path: path, handle: h}, true
	}
	for _, dir := range cudaLibraryDirs() {
		for _, name := range names {
			pattern := filepath.Join(dir, name)
			if strings.ContainsAny(name, "*?[") {
				matches, _ := filepath.Glob(pattern)
				if len(matches) == 0 {
					tried = append(tried, pattern+" (no match)")
					continue
				}
				sort.Sort(sort.Reverse(sort.StringSlice(matches)))
				for _, m := range matches {
					if lib, ok := try(m); ok {
						return lib, nil
					}
				}
				continue
			}
			if _, err := os.Stat(pattern); err != nil {
				tried = append(tried, pattern+" (not found)")
				continue
			}
			if lib, ok := try(pattern); ok {
				return lib, nil
			}
		}
	}
	for _, name := range names {
		if strings.ContainsAny(name, "*?[") {
			continue
		}
		if lib, ok := try(name); ok { // loader search path
			return lib, nil
		}
	}
	var plain []string
	for _, n := range names {
		if !strings.ContainsAny(n, "*?[") {
			plain = append(plain, n)
		}
	}
	return nil, &missingLibError{what: what, names: strings.Join(plain, " or "), tried: tried}
}

// missingLibError is a library that could not be loaded: Error lists every
// path tried (for --device cuda), Brief says it in one line (for auto on a
// machine without a GPU, where the list is noise).
type missingLibError struct {
	what, names string
	tried       []string
}

func (e *missingLibError) Error() string {
	return fmt.Sprintf("cuda: cannot load %s (%s); set CUDA_HOME or LD_LIBRARY_PATH. Tried:\n  %s",
		e.what, e.names, strings.Join(e.tried, "\n  "))
}

func (e *missingLibError) Brief() string { return e.names + " not found" }

// cudaBinder binds symbols of one library, remembering the first missing one.
type cudaBinder struct {
	lib *cudaLib
	err error
}

// fn binds the C function name to the Go function variable fptr.
func (b *cudaBinder) fn(fptr any, name string) {
	if b.err != nil {
		return
	}
	sym, err := purego.Dlsym(b.lib.handle, name)
	if err != nil || sym == 0 {
		b.err = fmt.Errorf("cuda: %s (%s) lacks symbol %s (library too old?): %v", b.lib.what, b.lib.path, name, err)
		return
	}
	purego.RegisterFunc(fptr, sym)
}

// optional binds name if present and reports whether it was.
func (b *cudaBinder) optional(fptr any, name string) bool {
	if b.err != nil {
		return false
	}
	sym, err := purego.Dlsym(b.lib.handle, name)
	if err != nil || sym == 0 {
		return false
	}
	purego.RegisterFunc(fptr, sym)
	return true
}

// cudaCString copies s into a NUL-terminated byte slice for C.
func cudaCString(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

// cudaGoString copies a NUL-terminated C string (static storage or a buffer).
func cudaGoString(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// cudaGoStringBuf returns the text of buf up to its first NUL.
func cudaGoStringBuf(buf []byte) string {
	if i := strings.IndexByte(string(buf), 0); i >= 0 {
		return string(buf[:i])
	}
	return string(buf)
}
