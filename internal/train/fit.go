package train

// Before a model is allocated, its predicted memory (the metering backend
// runs the engine's own allocation code, see PredictMemory) is compared
// with what the device has, so an absurd size is an error naming the key
// instead of a makeslice panic or a fatal out-of-memory.

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/device"
)

// CheckFits refuses cfg on be when it cannot fit: training counts the
// optimizer and the micro-batch's activations, evaluation the model and
// one micro-batch.
func CheckFits(cfg config.Config, be gpu.Backend, training bool) error {
	return checkFits(cfg, be, training, 1)
}

// checkFitsRank is CheckFits for training on one GPU of a job of world
// ranks, which under ZeRO-1 holds a share of the optimizer state.
func checkFitsRank(cfg config.Config, be gpu.Backend, world int) error {
	return checkFits(cfg, be, true, world)
}

func checkFits(cfg config.Config, be gpu.Backend, training bool, world int) error {
	B, T := cfg.Train.MicroBatch, cfg.Train.SeqLen
	m := cfg.Model
	if err := config.CheckActivationSize(cfg); err != nil {
		return &config.UsageError{Err: err}
	}
	if n := m.NumParams(); training && cfg.MasterFree() && n > gpu.MaxRoundElements {
		return config.Usagef("model.vocab_size = %d, model.hidden_size = %d, model.num_layers = %d: %d weights exceed the %d that master-free training (train.weights: bf16_sr) can round; make the model smaller or set train.weights: master",
			m.VocabSize, m.Hidden, m.Layers, n, int64(gpu.MaxRoundElements))
	}
	var need, acts int64
	if training {
		p, _, err := PredictRankMemory(cfg, B, T, be.Name(), world)
		if err != nil {
			return err
		}
		need, acts = p.PeakAll, p.PeakAt[gpu.Activations]
	} else {
		meter := gpu.NewMeter(device.Footprint(be.Name()).ElementBytes())
		mm, err := NewModel(meter.Backend(), cfg)
		if err != nil {
			return err
		}
		if err := mm.Prepare(B, T); err != nil {
			return err
		}
		s := meter.Memory().Snapshot()
		need, acts = s.PeakAll, s.PeakAt[gpu.Activations]
	}
	limit, what := DeviceMemory(be)
	if limit <= 0 || need <= limit {
		return nil
	}
	culprit := fmt.Sprintf("model.vocab_size = %d, model.hidden_size = %d, model.num_layers = %d", m.VocabSize, m.Hidden, m.Layers)
	if acts > need/2 {
		culprit = fmt.Sprintf("train.micro_batch = %d, train.seq_len = %d", B, T)
	}
	return config.Usagef("%s: the run needs about %.3g GiB but %s has %.3g GiB; make them smaller (compact memreport shows where the memory goes)",
		culprit, float64(need)/(1<<30), what, float64(limit)/(1<<30))
}

// DeviceMemory is the memory a backend can use and what holds it: the
// GPU's total, or the host's physical memory for the CPU backend (0 when
// unknown).
func DeviceMemory(be gpu.Backend) (int64, string) {
	if c, ok := be.(interface {
		MemGetInfo() (free, total int64, err error)
	}); ok {
		if _, total, err := c.MemGetInfo(); err == nil {
			return total, "the GPU"
		}
		return 0, ""
	}
	return hostMemory(), "this host"
}

// hostMemory reads MemTotal from /proc/meminfo (0 where there is none).
func hostMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
