//go:build linux && (amd64 || arm64)

package cuda

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compact-llm/compact/csrc"
	"github.com/compact-llm/compact/internal/gpu"
)

// globalRE finds the names of __global__ functions; the optimizer's macros
// define theirs through *_ENTRY(name, ...) invocations (ADAMW_ENTRY,
// ADAMW_SR_ENTRY, ...).
var (
	globalRE = regexp.MustCompile(`extern "C" __global__ void\s+(?:__launch_bounds__\([^)]*\)\s*)?(\w+)\s*\(`)
	macroRE  = regexp.MustCompile(`(?m)^[A-Z_]+_ENTRY\((\w+),`)
)

// Every kernel in csrc has exactly one typed launcher and every launcher a
// kernel in the file it names, so no kernel is reachable only from scripts
// and no binding fails at load time. Runs without a GPU.
func TestEveryKernelHasALauncher(t *testing.T) {
	var ks kernels
	listed := map[string]bool{}
	for _, f := range ks.files() {
		if listed[f.name] {
			t.Errorf("%s listed twice", f.name)
		}
		listed[f.name] = true
		src, err := csrc.FS.ReadFile(f.name)
		if err != nil {
			t.Errorf("%s: %v", f.name, err)
			continue
		}
		var defined []string
		for _, m := range globalRE.FindAllStringSubmatch(string(src), -1) {
			if m[1] != "NAME" { // the macro's own definition
				defined = append(defined, m[1])
			}
		}
		for _, m := range macroRE.FindAllStringSubmatch(string(src), -1) {
			defined = append(defined, m[1])
		}
		var bound []string
		handles := map[*kernel]bool{}
		for _, b := range f.bindings {
			bound = append(bound, b.name)
			if handles[b.k] {
				t.Errorf("%s: two kernels bound to one handle (%s)", f.name, b.name)
			}
			handles[b.k] = true
			if b.block == 0 || b.block%32 != 0 && b.block != 1 {
				t.Errorf("%s: block %d is not a whole number of warps", b.name, b.block)
			}
		}
		slices.Sort(defined)
		slices.Sort(bound)
		if !slices.Equal(defined, bound) {
			t.Errorf("%s defines %v, Go binds %v", f.name, defined, bound)
		}
	}
	entries, err := csrc.FS.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".cu") && !listed[e.Name()] {
			t.Errorf("csrc/%s has no kernel set in kernels.files", e.Name())
		}
	}
}

// Every MapOp kernel has the C signature mapKernel.launch passes, so the one
// shared launcher fits each of them. Runs without a GPU.
func TestMapKernelSignatures(t *testing.T) {
	src, err := csrc.FS.ReadFile("elementwise.cu")
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range gpu.MapOps() {
		for suffix, elem := range map[string]string{"_bf16": "bf16", "_f32": "float"} {
			name := op.String() + suffix
			got, ok := cParams(string(src), name)
			want := []string{elem + "*", "float", "long"}
			if !ok {
				t.Errorf("elementwise.cu does not define %s", name)
			} else if !slices.Equal(got, want) {
				t.Errorf("%s takes (%s), mapKernel launches it with (%s)", name, strings.Join(got, ", "), strings.Join(want, ", "))
			}
		}
	}
}

// cParams are the parameter types of kernel name in src, names dropped and
// spaces removed ("const float *p" is "constfloat*").
func cParams(src, name string) ([]string, bool) {
	m := regexp.MustCompile(`extern "C" __global__ void\s+` + regexp.QuoteMeta(name) + `\s*\(([^)]*)\)`).FindStringSubmatch(src)
	if m == nil {
		return nil, false
	}
	var types []string
	for _, p := range strings.Split(m[1], ",") {
		p = strings.TrimSpace(p)
		cut := strings.LastIndexAny(p, " *") // the type ends before the name
		types = append(types, strings.ReplaceAll(p[:cut+1], " ", ""))
	}
	return types, true
}

// The Adam kernels (one macro, twelve instantiations) and the rounding kernel
// take the C parameters their launchers pass (adamKernel.launch,
// stochasticRound.launch), in order. Runs without a GPU.
func TestOptimizerKernelSignatures(t *testing.T) {
	src, err := csrc.FS.ReadFile("optimizer.cu")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)#define ADAM_ENTRY\(NAME, TO, TS, TG\)\s*\\\s*extern "C" __global__ void NAME\(([^)]*)\)`).FindSubmatch(src)
	if m == nil {
		t.Fatal("optimizer.cu: no ADAM_ENTRY(NAME, TO, TS, TG) macro")
	}
	var got []string
	for _, p := range strings.Split(strings.ReplaceAll(string(m[1]), "\\", ""), ",") {
		p = strings.TrimSpace(p)
		cut := strings.LastIndexAny(p, " *")
		got = append(got, strings.ReplaceAll(p[:cut+1], " ", ""))
	}
	want := []string{"TO*", "constTG*", "TS*", "TS*", "float*", "float*", "constfloat*", "long",
		"float", "float", "float", "float", "float", "float", "float", "float", "int",
		"unsignedint", "unsignedint", "unsignedint", "unsignedint", "unsignedint", "unsignedint", "long", "long"}
	if !slices.Equal(got, want) {
		t.Errorf("ADAM_ENTRY takes (%s), adamKernel launches it with (%s)", strings.Join(got, ", "), strings.Join(want, ", "))
	}
	for name, types := range map[string][2]string{"adam_f32_f32": {"float", "float"}, "adam_f32_bf16": {"float", "bf16"}, "adam_f32_i8": {"float", "q8"},
		"adam_bf16_f32": {"bf16", "float"}, "adam_bf16_bf16": {"bf16", "bf16"}, "adam_bf16_i8": {"bf16", "q8"}} {
		for suffix, g := range map[string]string{"": "float", "_gbf16": "bf16"} { // the gradient's type
			if e := "ADAM_ENTRY(" + name + suffix + ", " + types[0] + ", " + types[1] + ", " + g + ")"; !strings.Contains(string(src), e) {
				t.Errorf("optimizer.cu: want %s", e)
			}
		}
	}
	rsrc, err := csrc.FS.ReadFile("rounding.cu")
	if err != nil {
		t.Fatal(err)
	}
	got, ok := cParams(string(rsrc), "stochastic_round_bf16")
	want = []string{"bf16*", "constfloat*", "long", "float", "unsignedint", "unsignedint", "unsignedint", "unsignedint", "long"}
	if !ok || !slices.Equal(got, want) {
		t.Errorf("stochastic_round_bf16 takes (%s), its launcher passes (%s)", strings.Join(got, ", "), strings.Join(want, ", "))
	}
}
