package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/compact-llm/compact/internal/bench"
	"github.com/compact-llm/compact/internal/train"
	"github.com/spf13/cobra"
)

// benchModes are the --modes values, in the default order, and the config
// override of each.
var benchModes = []struct{ name, set string }{
	{"full", "compact.enabled=false"},
	{"compact", "compact.enabled=true"},
}

// benchModeNames lists the names of benchModes.
func benchModeNames() []string {
	names := make([]string, len(benchModes))
	for i, m := range benchModes {
		names[i] = m.name
	}
	return names
}

// benchOverride is the config override of the mode called name.
func benchOverride(name string) (string, error) {
	for _, m := range benchModes {
		if m.name == name {
			return m.set, nil
		}
	}
	return "", usagef("--modes: %q is not one of %s", name, strings.Join(benchModeNames(), ", "))
}

type benchOptions struct {
	config        configFlags
	modes         string
	warmup, steps int
	jsonOut       string
	profile       bool
}

func newBenchCmd() *cobra.Command {
	var opts benchOptions
	c := &cobra.Command{
		Use:   "bench [--config FILE] [--modes full,compact] [--steps N]",
		Short: "Time training steps: tok/s, TFLOP/s, MFU and peak memory",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runBench(c.Context(), opts, stdStreams())
		},
	}
	opts.config.register(c)
	f := c.Flags()
	names := benchModeNames()
	f.StringVar(&opts.modes, "modes", strings.Join(names, ","), "comma-separated: "+strings.Join(names, ", "))
	f.IntVar(&opts.warmup, "warmup", 3, "untimed steps first")
	f.IntVar(&opts.steps, "steps", 10, "timed steps")
	f.StringVar(&opts.jsonOut, "json", "", "also write results to this JSON file")
	f.BoolVar(&opts.profile, "profile", false, "also time every kernel (CUDA) and print where a step's device time goes")
	return c
}

func runBench(_ context.Context, opts benchOptions, s streams) error {
	if opts.steps <= 0 || opts.warmup < 0 {
		return usagef("--steps must be positive and --warmup not negative")
	}
	opts.config.defaultToTiny(s)
	modes := strings.Split(opts.modes, ",")
	sets := make([]string, len(modes))
	for i, mode := range modes { // every mode checked before the first is timed
		var err error
		if sets[i], err = benchOverride(mode); err != nil {
			return err
		}
	}
	var prof io.Writer
	if opts.profile {
		prof = s.out
	}
	var results []bench.Result
	for i, mode := range modes {
		cfg, err := opts.config.load(sets[i])
		if err != nil {
			return err
		}
		name := fmt.Sprintf("%s %s", configName(opts.config.file), mode)
		if cfg.Compact.Enabled {
			name += fmt.Sprintf(" r=%g", cfg.Compact.Rank)
		}
		fmt.Fprintf(s.err, "bench %s: %d warmup + %d timed steps...\n", name, opts.warmup, opts.steps)
		r, err := bench.Run(cfg, name, opts.warmup, opts.steps, prof)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if r.DeviceNote != "" && i == 0 {
			fmt.Fprintf(s.err, "device: %s\n", r.DeviceNote)
		}
		results = append(results, r)
	}
	printBenchTable(s.out, results)
	if opts.jsonOut != "" {
		js, _ := json.MarshalIndent(results, "", "  ")
		return os.WriteFile(opts.jsonOut, append(js, '\n'), 0o644)
	}
	return nil
}

// printBenchTable prints the results as aligned columns; MFU is "-" where
// the device's peak FLOP/s is unknown (the CPU, unlisted GPUs).
func printBenchTable(out io.Writer, results []bench.Result) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "config\tdevice\ttok/s\tTFLOP/s\tMFU\tpeak memory\tms/step\t")
	for _, r := range results {
		mfu := "-"
		if r.MFU != nil {
			mfu = fmt.Sprintf("%.1f%%", *r.MFU*100)
		}
		fmt.Fprintf(w, "%s\t%s\t%.0f\t%.3g\t%s\t%s\t%.1f\t\n", r.Name, r.Device, r.TokPerS, r.TFLOPS, mfu,
			train.FormatBytes(r.PeakBytes), r.StepMs)
	}
	w.Flush()
}
