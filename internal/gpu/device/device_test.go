package device

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/gpu"
)

// briefErr stands for a missing-library error of the CUDA backend.
type briefErr struct{}

func (briefErr) Error() string { return "cuda: libfoo.so not found in:\n/a\n/b" }
func (briefErr) Brief() string { return "libfoo.so not found" }

func TestBrief(t *testing.T) {
	if b := Brief(fmt.Errorf("device cuda: %w", briefErr{})); b != "libfoo.so not found" {
		t.Errorf("Brief of a wrapped missing library = %q", b)
	}
	if b := Brief(errors.New("cuda: no device\nmore detail")); b != "no device" {
		t.Errorf("Brief of a plain error = %q", b)
	}
}

// On a machine without a usable GPU, auto says why in one line instead of
// every path tried; --device cuda keeps the full error.
func TestAutoDeviceSaysWhyInOneLine(t *testing.T) {
	be, how, err := Open(Auto, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if be.Name() == CPU && (strings.Contains(how, "\n") || !strings.HasPrefix(how, "cpu (no usable CUDA device: ")) {
		t.Errorf("auto on the CPU: %q", how)
	}
}

func TestUnknownDevice(t *testing.T) {
	_, _, err := Open("tpu", 1)
	if err == nil || !strings.Contains(err.Error(), `"tpu"`) || !strings.Contains(err.Error(), strings.Join(Names, ", ")) {
		t.Errorf("unknown device: %v", err)
	}
}

// A device's Footprint is what its backend really allocates: the element
// sizes of Low and Full tensors, and (CUDA, when a GPU is usable) the
// workspace the backend holds once it is open.
func TestFootprintMatchesBackend(t *testing.T) {
	for _, name := range []string{CPU, CUDA} {
		be, _, err := Open(name, 1)
		if err != nil {
			t.Logf("%s: %v", name, Brief(err))
			continue
		}
		fp := Footprint(be.Name())
		low, full := fp.ElementBytes()
		const n = 1000
		for _, c := range []struct {
			p    gpu.Precision
			want int64
		}{{gpu.Low, low}, {gpu.Full, full}} {
			before := be.Memory().Current[gpu.Activations]
			x, err := be.Alloc("x", gpu.Activations, c.p, n)
			if err != nil {
				t.Fatal(err)
			}
			if got := be.Memory().Current[gpu.Activations] - before; got != n*c.want {
				t.Errorf("%s: a %v tensor of %d elements takes %d bytes, the footprint says %d", name, c.p, n, got, n*c.want)
			}
			be.Free(x)
		}
		// The workspace grows with the step; what the backend holds at open
		// is the footprint's for the smallest step.
		if ws, open := fp.WorkspaceBytes(1, 1, 1, 1), be.Memory().Current[gpu.Workspace]; ws < open {
			t.Errorf("%s: holds %d workspace bytes at open, the footprint predicts %d", name, open, ws)
		}
		be.Close()
	}
	if _, full := Footprint("meter").ElementBytes(); full != 4 {
		t.Errorf("an unknown name's footprint has %d-byte Full elements", full)
	}
}
