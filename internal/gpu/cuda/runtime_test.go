//go:build linux && (amd64 || arm64)

// Tests of the CUDA run-time binding: library discovery and error paths run
// everywhere; device tests skip when no usable GPU is present.
package cuda

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
)

func TestFindLibraryMissing(t *testing.T) {
	home := t.TempDir()
	t.Setenv("CUDA_HOME", home)
	_, err := findLibrary("the bogus library", []string{"libcompact-bogus.so.7", "libcompact-bogus.so.7.*"})
	if err == nil {
		t.Fatal("findLibrary found a library that does not exist")
	}
	msg := err.Error()
	for _, want := range []string{
		"the bogus library",
		filepath.Join(home, "lib64", "libcompact-bogus.so.7"),
		filepath.Join(home, "lib", "libcompact-bogus.so.7"),
		"/usr/local/cuda/lib64/libcompact-bogus.so.7",
		"/usr/lib64/libcompact-bogus.so.7",
		"/usr/lib/libcompact-bogus.so.7",
		"/usr/local/cuda/lib64/libcompact-bogus.so.7.* (no match)",
		"libcompact-bogus.so.7 (dlopen:", // the loader-path attempt
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

// A missing library's error says briefly which one (gpu/device's Brief
// shows this line for --device auto on a machine without a GPU).
func TestMissingLibraryBrief(t *testing.T) {
	_, err := findLibrary("the bogus library", []string{"libcompact-bogus.so.7", "libcompact-bogus.so.7.*"})
	var b interface{ Brief() string }
	if !errors.As(err, &b) || b.Brief() != "libcompact-bogus.so.7 not found" {
		t.Errorf("Brief of %v", err)
	}
}

// TestCudaDeviceCountNoPanic must pass on machines without a GPU or driver:
// deviceCount reports an error there instead of panicking.
func TestCudaDeviceCountNoPanic(t *testing.T) {
	n, err := deviceCount()
	if err != nil {
		if n != 0 {
			t.Errorf("deviceCount = %d with error %v", n, err)
		}
		if err.Error() == "" {
			t.Error("empty error message")
		}
		t.Logf("no CUDA here, as expected on CPU machines: %v", err)
		return
	}
	t.Logf("%d CUDA device(s)", n)
	if _, err := openDevice(n); err == nil {
		t.Errorf("openDevice(%d) with %d devices succeeded", n, n)
	}
}

func TestCudaErrorString(t *testing.T) {
	if _, err := deviceCount(); err != nil && cu.GetErrorName == nil {
		t.Skipf("no CUDA driver library: %v", err)
	}
	if s := cudaErrorString(cudaErrorOutOfMemory); s != "CUDA_ERROR_OUT_OF_MEMORY: out of memory" {
		t.Errorf("cudaErrorString(2) = %q", s)
	}
	if s := cudaErrorString(cudaErrorNoDevice); !strings.HasPrefix(s, "CUDA_ERROR_NO_DEVICE") {
		t.Errorf("cudaErrorString(100) = %q", s)
	}
}

// cudaTestDevice opens device 0 or skips the test.
func cudaTestDevice(t *testing.T) *device {
	t.Helper()
	n, err := deviceCount()
	if err == nil && n == 0 {
		err = errNoDevices
	}
	if err != nil {
		t.Skipf("no usable CUDA device: %v", err)
	}
	d, err := openDevice(0)
	if err != nil {
		t.Fatalf("openDevice(0): %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	major, minor := d.ComputeCapability()
	t.Logf("%s: sm_%d%d, %d SMs, %.1f GiB, driver %d, NVRTC %d.%d, cuBLASLt %d",
		d.Name(), major, minor, d.MultiprocessorCount(), float64(d.TotalMem())/(1<<30),
		cu.version, nvrtc.major, nvrtc.minor, blasLt.version)
	return d
}

var errNoDevices = &cudaError{Op: "cuDeviceGetCount returned 0", Code: int(cudaErrorNoDevice)}

func TestCudaMemory(t *testing.T) {
	d := cudaTestDevice(t)
	free, total, err := d.MemGetInfo()
	if err != nil || free <= 0 || total < free || total > d.TotalMem()+(1<<30) {
		t.Fatalf("MemGetInfo = %d, %d, %v (TotalMem %d)", free, total, err, d.TotalMem())
	}
	const n = 1<<20 + 3
	src := make([]float32, n)
	for i := range src {
		src[i] = float32(i)*0.5 - 7
	}
	p, err := d.Malloc(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	q, err := d.Malloc(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free(p)
	defer d.Free(q)
	if err := d.HtoD(p, unsafe.Pointer(&src[0]), 4*n); err != nil {
		t.Fatal(err)
	}
	if err := d.DtoD(q, p, 4*n); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, n)
	if err := d.DtoH(unsafe.Pointer(&got[0]), q, 4*n); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != src[i] {
			t.Fatalf("round trip: [%d] = %v, want %v", i, got[i], src[i])
		}
	}
	// Memsets: bytes 8..15 set to 0xAB, then words 4.. set to 1.0f.
	if err := d.MemsetD8(q+8, 0xAB, 8); err != nil {
		t.Fatal(err)
	}
	if err := d.MemsetD32(q+16, math.Float32bits(1), n-4); err != nil {
		t.Fatal(err)
	}
	if err := d.DtoH(unsafe.Pointer(&got[0]), q, 4*n); err != nil {
		t.Fatal(err)
	}
	ab := math.Float32frombits(0xABABABAB)
	if got[0] != src[0] || got[1] != src[1] || math.Float32bits(got[2]) != math.Float32bits(ab) ||
		math.Float32bits(got[3]) != 0xABABABAB || got[4] != 1 || got[n-1] != 1 {
		t.Errorf("memset result %v %v %#x %#x %v %v", got[0], got[1], math.Float32bits(got[2]),
			math.Float32bits(got[3]), got[4], got[n-1])
	}
	if _, err := d.Malloc(1 << 50); err == nil || !isOutOfMemory(err) ||
		!strings.Contains(err.Error(), "cuMemAlloc_v2(1125899906842624 bytes): CUDA_ERROR_OUT_OF_MEMORY") {
		t.Errorf("Malloc(1 PiB) error = %v", err)
	}
}

func TestCudaDoNestedAndConcurrent(t *testing.T) {
	d := cudaTestDevice(t)
	err := d.Do(func() error {
		p, err := d.Malloc(1024) // nested Do runs inline
		if err != nil {
			return err
		}
		if err := d.MemsetD8(p, 1, 1024); err != nil {
			return err
		}
		if err := d.Sync(); err != nil {
			return err
		}
		return d.Free(p)
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				p, err := d.Malloc(4096)
				if err == nil {
					err = d.Free(p)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := d.Do(func() error { panic("boom") }); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("panic in Do gave %v", err)
	}
	if _, err := d.Malloc(16); err != nil {
		t.Errorf("device thread dead after a panic: %v", err)
	}
}

func TestCudaCloseTwice(t *testing.T) {
	d := cudaTestDevice(t)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Malloc(16); err == nil {
		t.Error("Malloc after Close succeeded")
	}
	// The cleanup's second Close must return nil.
}

func TestCudaCloseInsideDo(t *testing.T) {
	d := cudaTestDevice(t)
	if err := d.Do(func() error { return d.Close() }); err == nil {
		t.Error("Close inside Do succeeded")
	}
	if _, err := d.Malloc(16); err != nil {
		t.Errorf("device unusable after a refused Close: %v", err)
	}
}

const cudaTestKernels = `
#include <cuda_bf16.h>
extern "C" __global__ void axpy(float* y, const float* x, float a, int n) {
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n) y[i] += a * x[i];
}
// Writes each parameter back so the host can check the parameter block.
extern "C" __global__ void params(unsigned long long* out, int a, unsigned int b, float c,
                                  long long d, unsigned long long e, double f, const float* p) {
	out[0] = (unsigned long long)(long long)a;
	out[1] = b;
	out[2] = __float_as_uint(c);
	out[3] = (unsigned long long)d;
	out[4] = e;
	out[5] = __double_as_longlong(f);
	out[6] = (unsigned long long)p;
	out[7] = __float_as_uint(p[1]);
}
extern "C" __global__ void bigsmem(float* out) {
	extern __shared__ float s[];
	int n = 64 * 1024 / sizeof(float);
	for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = (float)i;
	__syncthreads();
	if (threadIdx.x == 0) out[0] = s[n - 1];
}
extern "C" __global__ void empty() {}
`

func TestCudaCompileAndLaunch(t *testing.T) {
	d := cudaTestDevice(t)
	cache := t.TempDir()
	t.Setenv("COMPACT_CACHE", cache)

	t0 := time.Now()
	mod, err := d.CompileModule("test_kernels.cu", cudaTestKernels)
	if err != nil {
		t.Fatal(err)
	}
	cold := time.Since(t0)
	if mod.FromCache() {
		t.Error("first compile came from the cache")
	}
	entries, _ := filepath.Glob(filepath.Join(cache, "kernels", "*.cubin"))
	if len(entries) != 1 {
		t.Fatalf("cache holds %v, want one .cubin", entries)
	}
	t0 = time.Now()
	mod2, err := d.CompileModule("test_kernels.cu", cudaTestKernels)
	if err != nil {
		t.Fatal(err)
	}
	warm := time.Since(t0)
	if !mod2.FromCache() {
		t.Error("second compile missed the cache")
	}
	t.Logf("compile %v, cached load %v", cold, warm)

	// A corrupt entry is recompiled and rewritten.
	if err := os.WriteFile(entries[0], []byte("CMPCTCB1 garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	mod3, err := d.CompileModule("test_kernels.cu", cudaTestKernels)
	if err != nil {
		t.Fatal(err)
	}
	if mod3.FromCache() {
		t.Error("corrupt cache entry was used")
	}
	if _, ok := readCachedCubin(entries[0]); !ok {
		t.Error("cache entry not rewritten after corruption")
	}
	stale, err := mod3.Function("empty")
	if err != nil {
		t.Fatal(err)
	}
	if err := mod3.Unload(); err != nil {
		t.Error(err)
	}
	if err := d.Launch(stale, [3]uint32{1, 1, 1}, [3]uint32{1, 1, 1}, 0); err == nil || !strings.Contains(err.Error(), "unloaded") {
		t.Errorf("launch from an unloaded module: %v", err)
	}
	if _, err := mod.Function("nope"); err == nil || !strings.Contains(err.Error(), "CUDA_ERROR_NOT_FOUND") {
		t.Errorf("missing kernel: %v", err)
	}

	// axpy
	axpy, err := mod.Function("axpy")
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	x, y := make([]float32, n), make([]float32, n)
	for i := range x {
		x[i], y[i] = float32(i), float32(2*i+1)
	}
	dx, _ := d.Malloc(4 * n)
	dy, _ := d.Malloc(4 * n)
	defer d.Free(dx)
	defer d.Free(dy)
	if err := d.HtoD(dx, unsafe.Pointer(&x[0]), 4*n); err != nil {
		t.Fatal(err)
	}
	if err := d.HtoD(dy, unsafe.Pointer(&y[0]), 4*n); err != nil {
		t.Fatal(err)
	}
	if err := d.Launch(axpy, [3]uint32{(n + 127) / 128, 1, 1}, [3]uint32{128, 1, 1}, 0, argPtr(dy), argPtr(dx), argF32(0.5), argI32(n)); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, n)
	if err := d.DtoH(unsafe.Pointer(&got[0]), dy, 4*n); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if want := y[i] + 0.5*x[i]; got[i] != want {
			t.Fatalf("axpy[%d] = %v, want %v", i, got[i], want)
		}
	}

	// Every argument type lands where the kernel expects it.
	params, err := mod.Function("params")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := d.Malloc(8 * 8)
	defer d.Free(out)
	err = d.Launch(params, [3]uint32{1, 1, 1}, [3]uint32{1, 1, 1}, 0,
		argPtr(out), argI32(-5), argU32(0xDEADBEEF), argF32(1.25), argI64(-1<<40), argU64(1<<63+7), argF64(math.Pi), argPtr(dx))
	if err != nil {
		t.Fatal(err)
	}
	var res [8]uint64
	if err := d.DtoH(unsafe.Pointer(&res[0]), out, 64); err != nil {
		t.Fatal(err)
	}
	neg5, negBig := int64(-5), int64(-1<<40)
	want := [8]uint64{uint64(neg5), 0xDEADBEEF, uint64(math.Float32bits(1.25)), uint64(negBig),
		1<<63 + 7, math.Float64bits(math.Pi), uint64(dx), uint64(math.Float32bits(1))}
	if res != want {
		t.Errorf("params kernel read %#x, want %#x", res, want)
	}

	// > 48 KiB of dynamic shared memory needs the attribute.
	big, err := mod.Function("bigsmem")
	if err != nil {
		t.Fatal(err)
	}
	if d.MaxSharedMemPerBlockOptin() >= 64*1024 {
		if err := big.SetMaxDynamicSharedMem(64 * 1024); err != nil {
			t.Fatal(err)
		}
		if err := d.Launch(big, [3]uint32{1, 1, 1}, [3]uint32{256, 1, 1}, 64*1024, argPtr(out)); err != nil {
			t.Fatal(err)
		}
		var v float32
		if err := d.DtoH(unsafe.Pointer(&v), out, 4); err != nil {
			t.Fatal(err)
		}
		if v != 16383 {
			t.Errorf("bigsmem = %v", v)
		}
	}
	if regs, err := axpy.NumRegs(); err != nil || regs <= 0 {
		t.Errorf("NumRegs = %d, %v", regs, err)
	}
}

func TestCudaCompileError(t *testing.T) {
	d := cudaTestDevice(t)
	t.Setenv("COMPACT_CACHE", t.TempDir())
	_, err := d.CompileModule("broken.cu", `extern "C" __global__ void k(float* y) { y[0] = undefined_thing; }`)
	if err == nil {
		t.Fatal("broken source compiled")
	}
	for _, want := range []string{"broken.cu", "NVRTC_ERROR_COMPILATION", "undefined_thing", "sm_"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("compile error lacks %q:\n%v", want, err)
		}
	}
}

func TestCudaEvents(t *testing.T) {
	d := cudaTestDevice(t)
	start, err := d.NewEvent()
	if err != nil {
		t.Fatal(err)
	}
	end, _ := d.NewEvent()
	defer d.DestroyEvent(start)
	defer d.DestroyEvent(end)

	const n = 2048
	p, _ := d.Malloc(4 * n * n)
	defer d.Free(p)
	if err := d.RecordEvent(start); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		const sz = 4 * n / 2 * n / 2 // bytes of one operand; no workspace set here
		if err := d.Gemm(p, p+sz, p+2*sz, dtF32, dtF32, dtF32, n/2, n/2, n/2, false, true, 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.RecordEvent(end); err != nil {
		t.Fatal(err)
	}
	ms, err := d.ElapsedMs(start, end)
	if err != nil || ms <= 0 {
		t.Fatalf("ElapsedMs = %v, %v", ms, err)
	}
	t.Logf("3 f32 GEMMs of %d^3 (first calls: plan and cuBLASLt lazy loading included): %.3f ms", n/2, ms)

	// Steady state, bf16 in, bf16 and f32 out, with the workspace.
	ws, err := d.Malloc(gemmWorkspaceBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free(ws)
	if err := d.SetGemmWorkspace(ws, gemmWorkspaceBytes); err != nil {
		t.Fatal(err)
	}
	const m = 4096
	q, err := d.Malloc(3 * 4 * m * m)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free(q)
	if err := d.MemsetD8(q, 0, 3*4*m*m); err != nil {
		t.Fatal(err)
	}
	for _, ct := range []dtype{dtBF16, dtF32} {
		for _, tr := range [][2]bool{{false, true}, {false, false}, {true, false}} {
			gemm := func() error {
				return d.Gemm(q, q+4*m*m, q+8*m*m, ct, dtBF16, dtBF16, m, m, m, tr[0], tr[1], 1, 0)
			}
			if err := gemm(); err != nil {
				t.Fatal(err)
			}
			d.RecordEvent(start)
			for i := 0; i < 10; i++ {
				gemm()
			}
			d.RecordEvent(end)
			ms, err := d.ElapsedMs(start, end)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("bf16 GEMM %d^3 -> %v transA=%v transB=%v: %.3f ms each, %.0f TFLOP/s",
				m, ct, tr[0], tr[1], ms/10, 2*m*m*m/(float64(ms)/10*1e-3)/1e12)
		}
	}

}

// TestCudaCallOverhead logs what a Do hand-off, a driver call through purego
// and a kernel launch cost on the host.
func TestCudaCallOverhead(t *testing.T) {
	d := cudaTestDevice(t)
	t.Setenv("COMPACT_CACHE", t.TempDir())
	mod, err := d.CompileModule("test_kernels.cu", cudaTestKernels)
	if err != nil {
		t.Fatal(err)
	}
	empty, err := mod.Function("empty")
	if err != nil {
		t.Fatal(err)
	}
	axpy, _ := mod.Function("axpy")
	p, _ := d.Malloc(4096)
	defer d.Free(p)
	us := func(d time.Duration, n int) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(n) }
	// Warm up: the first launches of a kernel load it.
	for i := 0; i < 20; i++ {
		d.Launch(axpy, [3]uint32{1, 1, 1}, [3]uint32{32, 1, 1}, 0, argPtr(p), argPtr(p), argF32(1), argI32(8))
		d.Launch(empty, [3]uint32{1, 1, 1}, [3]uint32{32, 1, 1}, 0)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	nop := func() error { return nil }
	for _, spin := range []time.Duration{time.Duration(cudaSpin.Load()), 0} {
		old := cudaSpin.Load()
		cudaSpin.Store(int64(spin))
		d.Do(nop)
		t0 := time.Now()
		for i := 0; i < n; i++ {
			d.Do(nop)
		}
		el := time.Since(t0)
		t0 = time.Now()
		for i := 0; i < n/4; i++ {
			if err := d.Launch(axpy, [3]uint32{1, 1, 1}, [3]uint32{32, 1, 1}, 0, argPtr(p), argPtr(p), argF32(1), argI32(8)); err != nil {
				t.Fatal(err)
			}
		}
		el2 := time.Since(t0)
		d.Sync()
		cudaSpin.Store(old)
		t.Logf("spin %v: empty Do round trip %.2f us; Launch (own Do, 4 args) %.2f us", spin, us(el, n), us(el2, n/4))
	}
	sym, err := purego.Dlsym(cu.lib.handle, "cuDriverGetVersion")
	if err != nil {
		t.Fatal(err)
	}
	var v int32
	var tReg, tSys, tLaunch0, tLaunch4 time.Duration
	d.Do(func() error {
		t0 := time.Now()
		for i := 0; i < n; i++ {
			cu.DriverGetVersion(&v)
		}
		tReg = time.Since(t0)
		t0 = time.Now()
		for i := 0; i < n; i++ {
			purego.SyscallN(sym, uintptr(unsafe.Pointer(&v)))
		}
		tSys = time.Since(t0)
		t0 = time.Now()
		for i := 0; i < n/4; i++ {
			d.Launch(empty, [3]uint32{1, 1, 1}, [3]uint32{32, 1, 1}, 0)
		}
		tLaunch0 = time.Since(t0)
		cu.StreamSynchronize(d.stream)
		t0 = time.Now()
		for i := 0; i < n/4; i++ {
			d.Launch(axpy, [3]uint32{1, 1, 1}, [3]uint32{32, 1, 1}, 0, argPtr(p), argPtr(p), argF32(1), argI32(8))
		}
		tLaunch4 = time.Since(t0)
		return cuCheck(cu.StreamSynchronize(d.stream), "sync")
	})
	t.Logf("inside one Do: purego RegisterFunc call %.2f us, SyscallN %.2f us, Launch 0 args %.2f us, 4 args %.2f us",
		us(tReg, n), us(tSys, n), us(tLaunch0, n/4), us(tLaunch4, n/4))
}

// cudaTestToBF16 rounds f to the nearest bfloat16 (ties to even).
func cudaTestToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	b += 0x7FFF + (b>>16)&1
	return uint16(b >> 16)
}

func cudaTestFromBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// cudaTestMatrix is a host matrix plus its device copy in a given type.
type cudaTestMatrix struct {
	vals []float64 // exactly the values on the device
	ptr  uintptr
}

func cudaTestUpload(t *testing.T, d *device, rng *rand.Rand, n int, dt dtype) cudaTestMatrix {
	t.Helper()
	m := cudaTestMatrix{vals: make([]float64, n)}
	var err error
	if m.ptr, err = d.Malloc(int64(n) * dt.Size()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Free(m.ptr) })
	switch dt {
	case dtBF16:
		h := make([]uint16, n)
		for i := range h {
			h[i] = cudaTestToBF16(float32(rng.NormFloat64()))
			m.vals[i] = float64(cudaTestFromBF16(h[i]))
		}
		err = d.HtoD(m.ptr, unsafe.Pointer(&h[0]), int64(2*n))
	case dtF32:
		h := make([]float32, n)
		for i := range h {
			h[i] = float32(rng.NormFloat64())
			m.vals[i] = float64(h[i])
		}
		err = d.HtoD(m.ptr, unsafe.Pointer(&h[0]), int64(4*n))
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func cudaTestDownload(t *testing.T, d *device, p uintptr, n int, dt dtype) []float64 {
	t.Helper()
	out := make([]float64, n)
	switch dt {
	case dtBF16:
		h := make([]uint16, n)
		if err := d.DtoH(unsafe.Pointer(&h[0]), p, int64(2*n)); err != nil {
			t.Fatal(err)
		}
		for i, v := range h {
			out[i] = float64(cudaTestFromBF16(v))
		}
	case dtF32:
		h := make([]float32, n)
		if err := d.DtoH(unsafe.Pointer(&h[0]), p, int64(4*n)); err != nil {
			t.Fatal(err)
		}
		for i, v := range h {
			out[i] = float64(v)
		}
	}
	return out
}

func TestCudaGemm(t *testing.T) {
	d := cudaTestDevice(t)
	ws, err := d.Malloc(gemmWorkspaceBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free(ws)
	if err := d.SetGemmWorkspace(ws, gemmWorkspaceBytes); err != nil {
		t.Fatal(err)
	}
	type combo struct {
		ab, c dtype
		tol   float64
	}
	combos := []combo{{dtF32, dtF32, 1e-5}, {dtBF16, dtBF16, 1e-2}, {dtBF16, dtF32, 1e-3}}
	shapes := [][3]int{{37, 53, 29}, {256, 512, 384}, {1, 7, 5}, {64, 1, 129}}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, cb := range combos {
		for _, sh := range shapes {
			M, N, K := sh[0], sh[1], sh[2]
			for _, transA := range []bool{false, true} {
				for _, transB := range []bool{false, true} {
					A := cudaTestUpload(t, d, rng, M*K, cb.ab)
					B := cudaTestUpload(t, d, rng, K*N, cb.ab)
					C := cudaTestUpload(t, d, rng, M*N, cb.c)
					for _, scal := range [][2]float32{{1, 0}, {0.75, 1}} {
						alpha, beta := scal[0], scal[1]
						if beta == 0 {
							// C is garbage-tolerant with beta 0: fill it with NaN bytes.
							if err := d.MemsetD8(C.ptr, 0xFF, int64(M*N)*cb.c.Size()); err != nil {
								t.Fatal(err)
							}
						}
						if err := d.Gemm(C.ptr, A.ptr, B.ptr, cb.c, cb.ab, cb.ab, M, N, K, transA, transB, alpha, beta); err != nil {
							t.Fatalf("%v %v %dx%dx%d tA=%v tB=%v: %v", cb.ab, cb.c, M, N, K, transA, transB, err)
						}
						got := cudaTestDownload(t, d, C.ptr, M*N, cb.c)
						var maxDiff, maxRef float64
						for i := 0; i < M; i++ {
							for j := 0; j < N; j++ {
								var s float64
								for k := 0; k < K; k++ {
									av := A.vals[i*K+k]
									if transA {
										av = A.vals[k*M+i]
									}
									bv := B.vals[k*N+j]
									if transB {
										bv = B.vals[j*K+k]
									}
									s += av * bv
								}
								ref := float64(alpha) * s
								if beta != 0 {
									ref += float64(beta) * C.vals[i*N+j]
								}
								maxDiff = max(maxDiff, math.Abs(got[i*N+j]-ref))
								maxRef = max(maxRef, math.Abs(ref))
							}
						}
						rel := maxDiff / maxRef
						if !(rel < cb.tol) {
							t.Errorf("%v,%v->%v M=%d N=%d K=%d transA=%v transB=%v alpha=%v beta=%v: rel err %.3g (tol %g)",
								cb.ab, cb.ab, cb.c, M, N, K, transA, transB, alpha, beta, rel, cb.tol)
						}
						C.vals = got // the next beta=1 case accumulates onto this
					}
				}
			}
		}
	}
	// Unaligned (16-byte offset) operands still work.
	A := cudaTestUpload(t, d, rng, 40*33+4, dtF32)
	B := cudaTestUpload(t, d, rng, 33*20+4, dtF32)
	C := cudaTestUpload(t, d, rng, 40*20+4, dtF32)
	if err := d.Gemm(C.ptr+16, A.ptr+16, B.ptr+16, dtF32, dtF32, dtF32, 40, 20, 33, false, false, 1, 0); err != nil {
		t.Fatalf("unaligned Gemm: %v", err)
	}
	got := cudaTestDownload(t, d, C.ptr+16, 40*20, dtF32)
	for i := 0; i < 40; i++ {
		for j := 0; j < 20; j++ {
			var s float64
			for k := 0; k < 33; k++ {
				s += A.vals[4+i*33+k] * B.vals[4+k*20+j]
			}
			if math.Abs(got[i*20+j]-s) > 1e-4*(1+math.Abs(s)) {
				t.Fatalf("unaligned Gemm [%d,%d] = %v, want %v", i, j, got[i*20+j], s)
			}
		}
	}
	if err := d.Gemm(C.ptr, A.ptr, B.ptr, dtF32, dtBF16, dtF32, 4, 4, 4, false, false, 1, 0); err == nil ||
		!strings.Contains(err.Error(), "A=bf16 B=f32 C=f32") {
		t.Errorf("unsupported combination: %v", err)
	}
}
