package device

import (
	"errors"
	"fmt"
	"strings"
	"testing"
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
