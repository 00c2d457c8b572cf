package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/device"
	"github.com/compact-llm/compact/internal/train"
	"github.com/spf13/cobra"
)

func newMemreportCmd() *cobra.Command {
	var cf configFlags
	var memory, ranks, variants, plotFile string
	var batch, maxBatch int
	var measure, asJSON bool
	var reserve float64
	c := &cobra.Command{
		Use:   "memreport --config FILE [--batch B] [--memory 80GiB] [--measure] [--json] [--plot FILE.png]",
		Short: "Predict (and measure) peak device memory by category for full-rank and CompAct variants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := positiveFlags(cmd, map[string]int{"batch": batch, "max-batch": maxBatch}); err != nil {
				return err
			}
			if err := finiteFlags(map[string]float64{"reserve": reserve}); err != nil {
				return err
			}
			if reserve < 0 {
				return usagef("--reserve %g: must not be negative", reserve)
			}
			if maxBatch > 1<<20 {
				return usagef("--max-batch %d: at most %d", maxBatch, 1<<20)
			}
			cfg, err := cf.load()
			if err != nil {
				return err
			}
			if batch > 0 {
				cfg.Train.MicroBatch = batch
			}
			rs, err := parseRanks(ranks)
			if err != nil {
				return err
			}
			var filter []string
			if variants != "" {
				filter = strings.Split(variants, ",")
			}
			vs := train.MemVariants(rs, filter)
			if len(vs) == 0 {
				return usagef("--variants %q matches no variant", variants)
			}
			backend, limit, err := memoryTarget(cfg, memory)
			if err != nil {
				return err
			}
			reserveBytes := int64(reserve * (1 << 30))
			var rows []train.MemRow
			for _, v := range vs {
				vc := v.Apply(cfg)
				if err := vc.Validate(); err != nil {
					return &train.UsageError{Err: fmt.Errorf("variant %s: %w", v.Name, err)}
				}
				p, err := train.PredictMemory(vc, vc.Train.MicroBatch, vc.Train.SeqLen, backend)
				if err != nil {
					return fmt.Errorf("variant %s: %w", v.Name, err)
				}
				row := train.MemRow{Variant: v, Predicted: gpu.ByName(p.PeakAt), Kinds: p.Kinds}
				row.Predicted["total"] = p.PeakAll
				if row.MaxBatch, err = train.MaxMicroBatch(vc, vc.Train.SeqLen, backend, limit, reserveBytes, maxBatch); err != nil {
					return err
				}
				if measure {
					m, err := train.MeasureMemory(vc, vc.Train.MicroBatch, 2)
					if err != nil {
						return fmt.Errorf("variant %s: measuring: %w", v.Name, err)
					}
					row.Measured = gpu.ByName(m.PeakAt)
					row.Measured["total"] = m.PeakAll
					row.DriverUsed = m.DriverUsed
					e := 100 * float64(p.PeakAll-m.PeakAll) / float64(m.PeakAll)
					row.ErrorPercent = &e
				}
				rows = append(rows, row)
			}
			name := cf.file
			if name == "" {
				name = "default config"
			}
			title := fmt.Sprintf("%s: micro-batch %d x %d tokens, %s, limit %s GiB", name, cfg.Train.MicroBatch, cfg.Train.SeqLen, backend, gib(limit))
			if plotFile != "" {
				if err := train.PlotMemory(rows, title, limit, plotFile); err != nil {
					return fmt.Errorf("plot %s: %w", plotFile, err)
				}
			}
			if asJSON {
				js, _ := json.MarshalIndent(map[string]any{"title": title, "memory_bytes": limit,
					"reserve_bytes": reserveBytes, "rows": rows}, "", "  ")
				fmt.Println(string(js))
				return nil
			}
			printMemTable(os.Stdout, rows, title, reserveBytes, maxBatch, measure)
			return nil
		},
	}
	cf.register(c)
	f := c.Flags()
	f.IntVar(&batch, "batch", 0, "micro-batch to report (default train.micro_batch)")
	f.StringVar(&memory, "memory", "", "device memory to fit in, e.g. 80GiB (default: the GPU's, or 80GiB without one)")
	f.Float64Var(&reserve, "reserve", 1.0, "GiB kept free for the CUDA context, kernels and allocator rounding when finding the largest micro-batch")
	f.StringVar(&ranks, "ranks", "0.5,0.25,0.125", "CompAct ranks to compare (fractions of each layer's width, or absolute)")
	f.StringVar(&variants, "variants", "", "only variants whose names start with one of these (comma-separated), e.g. full+none,r0.25+none")
	f.IntVar(&maxBatch, "max-batch", 4096, "largest micro-batch the search tries")
	f.BoolVar(&measure, "measure", false, "also run real steps on the device and report the measured peaks")
	f.BoolVar(&asJSON, "json", false, "print JSON instead of the table")
	f.StringVar(&plotFile, "plot", "", "write a stacked bar chart (PNG) of the predictions")
	return c
}

func parseRanks(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r <= 0 {
			return nil, usagef("--ranks: %q is not a positive number", f)
		}
		out = append(out, r)
	}
	return out, nil
}

// memoryTarget resolves the backend whose element sizes to predict and the
// memory to fit in.
func memoryTarget(cfg train.Config, memory string) (string, int64, error) {
	backend := device.CPU
	var total int64
	if cfg.Train.Device != device.CPU {
		if t, err := device.GPUMemory(); err == nil {
			backend, total = device.CUDA, t
		} else if cfg.Train.Device == device.CUDA {
			return "", 0, fmt.Errorf("device cuda: %w", err)
		} else {
			backend = device.CUDA // predict for a GPU even when this machine has none
		}
	}
	if memory != "" {
		b, err := parseBytes(memory)
		if err != nil {
			return "", 0, usagef("--memory: %v", err)
		}
		total = b
	}
	if total == 0 {
		total = 80 << 30
	}
	return backend, total, nil
}

// parseBytes reads sizes such as 80GiB, 24GB, 512MiB or a plain byte count.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"G", 1 << 30}, {"M", 1 << 20}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || v <= 0 {
				return 0, fmt.Errorf("%q is not a size", s)
			}
			return int64(v * u.mult), nil
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 80GiB)", s)
	}
	return v, nil
}

func gib(b int64) string { return fmt.Sprintf("%.2f", float64(b)/(1<<30)) }

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
