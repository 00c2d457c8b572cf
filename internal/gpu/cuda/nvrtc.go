//go:build linux && (amd64 || arm64)

// NVRTC binding and the kernel cache: CompileModule compiles CUDA C++ for the
// device's own architecture into a CUBIN, caches it on disk keyed by a hash
// of everything that affects the result, and loads it as a module whose
// extern "C" kernels are looked up as CudaFunctions.
package cuda

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// nvrtcResult values from nvrtc.h (CUDA 13.0), enum nvrtcResult.
const (
	nvrtcSuccess          int32 = 0 // NVRTC_SUCCESS
	nvrtcErrorCompilation int32 = 6 // NVRTC_ERROR_COMPILATION
)

// nvrtc holds the NVRTC entry points; prototypes from nvrtc.h.
// nvrtcProgram is a pointer (struct _nvrtcProgram *): uintptr.
var nvrtc struct {
	GetErrorString    func(r int32) string                                                           // const char *nvrtcGetErrorString(nvrtcResult)
	Version           func(major, minor *int32) int32                                                // nvrtcVersion(int*, int*)
	CreateProgram     func(prog *uintptr, src, name *byte, n int32, hdrs, incl unsafe.Pointer) int32 // nvrtcCreateProgram(nvrtcProgram*, const char*, const char*, int, const char* const*, const char* const*)
	DestroyProgram    func(prog *uintptr) int32                                                      // nvrtcDestroyProgram(nvrtcProgram*)
	CompileProgram    func(prog uintptr, n int32, opts unsafe.Pointer) int32                         // nvrtcCompileProgram(nvrtcProgram, int, const char* const*)
	GetCUBINSize      func(prog uintptr, size *uintptr) int32                                        // nvrtcGetCUBINSize(nvrtcProgram, size_t*)
	GetCUBIN          func(prog uintptr, cubin *byte) int32                                          // nvrtcGetCUBIN(nvrtcProgram, char*)
	GetProgramLogSize func(prog uintptr, size *uintptr) int32                                        // nvrtcGetProgramLogSize(nvrtcProgram, size_t*)
	GetProgramLog     func(prog uintptr, log *byte) int32                                            // nvrtcGetProgramLog(nvrtcProgram, char*)

	lib          *cudaLib
	major, minor int32
}

var (
	nvrtcOnce sync.Once
	nvrtcErr  error
)

// loadNVRTC dlopens and binds libnvrtc once per process.
func loadNVRTC() error {
	nvrtcOnce.Do(func() {
		lib, err := findLibrary("NVRTC", nvrtcLibNames)
		if err != nil {
			nvrtcErr = err
			return
		}
		b := &cudaBinder{lib: lib}
		b.fn(&nvrtc.GetErrorString, "nvrtcGetErrorString")
		b.fn(&nvrtc.Version, "nvrtcVersion")
		b.fn(&nvrtc.CreateProgram, "nvrtcCreateProgram")
		b.fn(&nvrtc.DestroyProgram, "nvrtcDestroyProgram")
		b.fn(&nvrtc.CompileProgram, "nvrtcCompileProgram")
		b.fn(&nvrtc.GetCUBINSize, "nvrtcGetCUBINSize")
		b.fn(&nvrtc.GetCUBIN, "nvrtcGetCUBIN")
		b.fn(&nvrtc.GetProgramLogSize, "nvrtcGetProgramLogSize")
		b.fn(&nvrtc.GetProgramLog, "nvrtcGetProgramLog")
		if b.err != nil {
			nvrtcErr = b.err
			return
		}
		if r := nvrtc.Version(&nvrtc.major, &nvrtc.minor); r != nvrtcSuccess {
			nvrtcErr = nvrtcError("nvrtcVersion", r)
			return
		}
		nvrtc.lib = lib
	})
	return nvrtcErr
}

func nvrtcError(op string, r int32) error {
	return fmt.Errorf("%s: %s (nvrtcResult %d)", op, nvrtc.GetErrorString(r), r)
}

// module is a loaded CUBIN (cuModuleLoadData) with its kernels.
type module struct {
	d         *device
	h         uintptr // CUmodule
	name      string
	fromCache bool
	mu        sync.Mutex
	funcs     map[string]*function
}

// function is one kernel of a module (cuModuleGetFunction).
type function struct {
	m    *module
	h    uintptr // CUfunction
	name string
}

// Name is the kernel's name.
func (f *function) Name() string { return f.name }

// FromCache reports whether the module's CUBIN came from the disk cache.
func (m *module) FromCache() bool { return m.fromCache }

// cudaIncludeDirs returns the CUDA toolkit include directory and, when it
// exists, its cccl subdirectory (CUDA 13 keeps libcu++/CUB/Thrust there).
func cudaIncludeDirs() ([]string, error) {
	var candidates []string
	if home := os.Getenv("CUDA_HOME"); home != "" {
		candidates = append(candidates, filepath.Join(home, "include"))
	}
	candidates = append(candidates, "/usr/local/cuda/include")
	for _, dir := range candidates {
		if _, err := os.Stat(filepath.Join(dir, "cuda_runtime.h")); err != nil {
			continue
		}
		dirs := []string{dir}
		if st, err := os.Stat(filepath.Join(dir, "cccl")); err == nil && st.IsDir() {
			dirs = append(dirs, filepath.Join(dir, "cccl"))
		}
		return dirs, nil
	}
	return nil, fmt.Errorf("nvrtc: CUDA headers not found (looked for cuda_runtime.h in %s); "+
		"install the CUDA toolkit headers or set CUDA_HOME", strings.Join(candidates, ", "))
}

// kernelCacheDir is where compiled CUBINs are kept:
// $COMPACT_CACHE/kernels, else <user cache dir>/compact/kernels.
func kernelCacheDir() (string, error) {
	if c := os.Getenv("COMPACT_CACHE"); c != "" {
		return filepath.Join(c, "kernels"), nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "compact", "kernels"), nil
}

// nvrtcHasOption reports whether opts sets an option with one of the prefixes.
func nvrtcHasOption(opts []string, prefixes ...string) bool {
	for _, o := range opts {
		for _, p := range prefixes {
			if o == p || strings.HasPrefix(o, p+"=") {
				return true
			}
		}
	}
	return false
}

// nvrtcOptions builds the full option list for the device.
func (d *device) nvrtcOptions(extra []string) ([]string, string, error) {
	inc, err := cudaIncludeDirs()
	if err != nil {
		return nil, "", err
	}
	arch := fmt.Sprintf("sm_%d%d", d.major, d.minor)
	var opts []string
	if nvrtcHasOption(extra, "--gpu-architecture", "-arch") {
		arch = "" // the caller chose, e.g. sm_90a for wgmma
	} else {
		opts = append(opts, "--gpu-architecture="+arch)
	}
	if !nvrtcHasOption(extra, "--std", "-std") {
		opts = append(opts, "-std=c++17")
	}
	opts = append(opts, "-default-device")
	for _, dir := range inc {
		opts = append(opts, "--include-path="+dir)
	}
	return append(opts, extra...), arch, nil
}

// Cache file format: magic, sha256 of the CUBIN, the CUBIN.
var cubinCacheMagic = []byte("CMPCTCB1")

// CompileModule compiles source (named name in diagnostics) with NVRTC for
// the device's compute capability (--gpu-architecture=sm_XY unless opts set
// an architecture), -std=c++17 (unless opts set one), -default-device and the
// CUDA include directories, plus opts; --use_fast_math is not set. The CUBIN
// is cached on disk (see kernelCacheDir) under the sha256 of source,
// name, options, NVRTC version, driver version and architecture; a corrupt
// entry is recompiled. A compile error carries the full NVRTC log.
func (d *device) CompileModule(name, source string, opts ...string) (*module, error) {
	options, arch, err := d.nvrtcOptions(opts)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	for _, part := range append([]string{source, name, arch,
		fmt.Sprintf("nvrtc %d.%d", nvrtc.major, nvrtc.minor),
		fmt.Sprintf("driver %d", cu.version)}, options...) {
		fmt.Fprintf(h, "%d:%s\x00", len(part), part)
	}
	key := hex.EncodeToString(h.Sum(nil))

	var path string
	if dir, err := kernelCacheDir(); err == nil {
		path = filepath.Join(dir, key+".cubin")
	}
	if path != "" {
		if cubin, ok := readCachedCubin(path); ok {
			m, err := d.loadModule(name, cubin)
			if err == nil {
				m.fromCache = true
				return m, nil
			}
			os.Remove(path) // loadable once, not now: rebuild it
		}
	}
	cubin, err := nvrtcCompile(name, source, options)
	if err != nil {
		return nil, err
	}
	if path != "" {
		_ = writeCachedCubin(path, cubin) // the cache is an optimisation only
	}
	return d.loadModule(name, cubin)
}

// readCachedCubin returns a cache entry's CUBIN if it is intact.
func readCachedCubin(path string) ([]byte, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	hdr := len(cubinCacheMagic) + sha256.Size
	if len(data) <= hdr || !bytes.Equal(data[:len(cubinCacheMagic)], cubinCacheMagic) {
		return nil, false
	}
	cubin := data[hdr:]
	sum := sha256.Sum256(cubin)
	if !bytes.Equal(sum[:], data[len(cubinCacheMagic):hdr]) {
		return nil, false
	}
	return cubin, true
}

// writeCachedCubin writes a cache entry atomically (temp file + rename).
func writeCachedCubin(path string, cubin []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*.cubin")
	if err != nil {
		return err
	}
	sum := sha256.Sum256(cubin)
	_, err = f.Write(append(append(append([]byte{}, cubinCacheMagic...), sum[:]...), cubin...))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// nvrtcCompile runs NVRTC and returns the CUBIN. It needs no context, so it
// runs on the caller's goroutine, leaving the device thread free.
func nvrtcCompile(name, source string, options []string) ([]byte, error) {
	src, cname := cudaCString(source), cudaCString(name)
	var prog uintptr
	if r := nvrtc.CreateProgram(&prog, &src[0], &cname[0], 0, nil, nil); r != nvrtcSuccess {
		return nil, nvrtcError("nvrtcCreateProgram("+name+")", r)
	}
	defer nvrtc.DestroyProgram(&prog)

	var pin runtime.Pinner
	defer pin.Unpin()
	cstrs := make([]*byte, len(options)) // const char* const* options
	for i, o := range options {
		b := cudaCString(o)
		pin.Pin(&b[0])
		cstrs[i] = &b[0]
	}
	var optPtr unsafe.Pointer
	if len(cstrs) > 0 {
		pin.Pin(&cstrs[0])
		optPtr = unsafe.Pointer(&cstrs[0])
	}
	r := nvrtc.CompileProgram(prog, int32(len(options)), optPtr)
	runtime.KeepAlive(cstrs)
	if r != nvrtcSuccess {
		return nil, fmt.Errorf("nvrtc: compiling %s failed: %s\noptions: %s\n%s",
			name, nvrtc.GetErrorString(r), strings.Join(options, " "), nvrtcLog(prog))
	}
	var size uintptr
	if r := nvrtc.GetCUBINSize(prog, &size); r != nvrtcSuccess {
		return nil, nvrtcError("nvrtcGetCUBINSize("+name+")", r)
	}
	if size == 0 {
		return nil, fmt.Errorf("nvrtc: %s produced no CUBIN (options %s; a virtual compute_XX architecture gives PTX only)",
			name, strings.Join(options, " "))
	}
	cubin := make([]byte, size)
	if r := nvrtc.GetCUBIN(prog, &cubin[0]); r != nvrtcSuccess {
		return nil, nvrtcError("nvrtcGetCUBIN("+name+")", r)
	}
	return cubin, nil
}

// nvrtcLog returns the program's compile log.
func nvrtcLog(prog uintptr) string {
	var size uintptr
	if nvrtc.GetProgramLogSize(prog, &size) != nvrtcSuccess || size == 0 {
		return "(no NVRTC log)"
	}
	buf := make([]byte, size)
	if nvrtc.GetProgramLog(prog, &buf[0]) != nvrtcSuccess {
		return "(NVRTC log unavailable)"
	}
	return cudaGoStringBuf(buf)
}

// loadModule loads a CUBIN into the device's context.
func (d *device) loadModule(name string, cubin []byte) (*module, error) {
	m := &module{d: d, name: name, funcs: map[string]*function{}}
	err := d.Do(func() error {
		if r := cu.ModuleLoadData(&m.h, unsafe.Pointer(&cubin[0])); r != cudaSuccess {
			m.h = 0
			return newCudaError(fmt.Sprintf("cuModuleLoadData(%s, %d bytes)", name, len(cubin)), r)
		}
		d.modules = append(d.modules, m)
		return nil
	})
	runtime.KeepAlive(cubin)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Function returns the extern "C" kernel name of the module.
func (m *module) Function(name string) (*function, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f, ok := m.funcs[name]; ok {
		return f, nil
	}
	f := &function{m: m, name: name}
	cname := cudaCString(name)
	err := m.d.Do(func() error {
		if m.h == 0 {
			return fmt.Errorf("cuda: module %s is unloaded", m.name)
		}
		return cuCheck(cu.ModuleGetFunction(&f.h, m.h, &cname[0]), "cuModuleGetFunction(%s, %q)", m.name, name)
	})
	if err != nil {
		return nil, err
	}
	m.funcs[name] = f
	return f, nil
}

// Unload unloads the module; its functions become unusable.
func (m *module) Unload() error {
	return m.d.Do(func() error {
		if m.h == 0 {
			return nil
		}
		err := cuCheck(cu.ModuleUnload(m.h), "cuModuleUnload(%s)", m.name)
		m.h = 0
		for i, x := range m.d.modules {
			if x == m {
				m.d.modules = append(m.d.modules[:i], m.d.modules[i+1:]...)
				break
			}
		}
		return err
	})
}

// SetMaxDynamicSharedMem lets the kernel launch with up to bytes of dynamic
// shared memory (cuFuncSetAttribute with
// CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES); needed above 48 KiB, up
// to MaxSharedMemPerBlockOptin minus the kernel's static shared memory.
func (f *function) SetMaxDynamicSharedMem(bytes int) error {
	return f.m.d.Do(func() error {
		return cuCheck(cu.FuncSetAttribute(f.h, cuFuncAttrMaxDynamicSharedSizeBytes, int32(bytes)),
			"cuFuncSetAttribute(%s, MAX_DYNAMIC_SHARED_SIZE_BYTES=%d)", f.name, bytes)
	})
}

// attribute reads a CUfunction_attribute.
func (f *function) attribute(a int32, what string) (int, error) {
	var v int32
	err := f.m.d.Do(func() error {
		return cuCheck(cu.FuncGetAttribute(&v, a, f.h), "cuFuncGetAttribute(%s, %s)", f.name, what)
	})
	return int(v), err
}

// NumRegs is the number of registers each thread of the kernel uses.
func (f *function) NumRegs() (int, error) { return f.attribute(cuFuncAttrNumRegs, "NUM_REGS") }

// MaxThreadsPerBlock is the largest block the kernel can be launched with.
func (f *function) MaxThreadsPerBlock() (int, error) {
	return f.attribute(cuFuncAttrMaxThreadsPerBlock, "MAX_THREADS_PER_BLOCK")
}
