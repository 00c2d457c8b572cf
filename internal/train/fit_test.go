package train

import (
	"strings"
	"testing"

	"github.com/compact-llm/compact/configs"
	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cpu"
	"github.com/compact-llm/compact/internal/gpu/cuda"
)

// fitCases: a shipped config that fits any device this project targets,
// and one (16M x 16384 embedding, 1 TiB) that fits none.
func fitCases(t *testing.T) (small, huge config.Config) {
	t.Helper()
	// The embedded copy: the test binary also runs from the repository root
	// on the GPU machine, where ../../configs does not exist.
	small, err := config.Load(configs.Builtin+"tiny.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	huge = small
	huge.Model.VocabSize, huge.Model.Hidden, huge.Model.Heads, huge.Model.KVHeads = 16_000_000, 16384, 4, 4
	if err := huge.Validate(); err != nil {
		t.Fatalf("the huge case must pass the size caps to reach the memory check: %v", err)
	}
	return small, huge
}

func checkFitsOn(t *testing.T, be gpu.Backend) {
	small, huge := fitCases(t)
	for _, training := range []bool{true, false} {
		if err := CheckFits(small, be, training); err != nil {
			t.Errorf("%s training=%v: tiny refused: %v", be.Name(), training, err)
		}
		err := CheckFits(huge, be, training)
		if err == nil || !config.IsUsage(err) || !strings.Contains(err.Error(), "model.vocab_size = 16000000") {
			t.Errorf("%s training=%v: a 1 TiB model: %v; want a usage error naming model.vocab_size", be.Name(), training, err)
		}
	}
}

// TestCheckFitsCPU: on the CPU the limit is the host's physical memory.
func TestCheckFitsCPU(t *testing.T) {
	if hostMemory() <= 0 {
		t.Skip("no /proc/meminfo: the host memory limit is unknown here")
	}
	be := cpu.New(1)
	defer be.Close()
	checkFitsOn(t, be)
}

// TestCheckFitsCUDA: on a GPU the limit is the device's memory.
func TestCheckFitsCUDA(t *testing.T) {
	be, err := cuda.New(0)
	if err != nil {
		t.Skipf("no usable GPU: %v", err)
	}
	defer be.Close()
	if total, _ := DeviceMemory(be); total <= 0 {
		t.Fatal("the CUDA backend reports no device memory")
	}
	checkFitsOn(t, be)
}
