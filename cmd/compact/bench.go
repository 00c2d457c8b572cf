package main

import (
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

func newBenchCmd() *cobra.Command {
	var cf configFlags
	var modes string
	var warmup, steps int
	var jsonOut string
	var profile bool
	c := &cobra.Command{
		Use:   "bench --config FILE [--modes full,compact] [--steps N]",
		Short: "Time training steps: tok/s, TFLOP/s, MFU and peak memory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if steps <= 0 || warmup < 0 {
				return usagef("--steps must be positive and --warmup not negative")
			}
			var results []bench.Result
			for _, mode := range strings.Split(modes, ",") {
				var extra []string
				switch mode {
				case "full":
					extra = []string{"compact.enabled=false"}
				case "compact":
					extra = []string{"compact.enabled=true"}
				default:
					return usagef("--modes: %q is not full or compact", mode)
				}
				cfg, err := cf.load(extra...)
				if err != nil {
					return err
				}
				name := fmt.Sprintf("%s %s", cf.file, mode)
				if mode == "compact" {
					name += fmt.Sprintf(" r=%g", cfg.Compact.Rank)
				}
				var prof io.Writer
				if profile {
					prof = os.Stdout
				}
				fmt.Fprintf(os.Stderr, "bench %s: %d warmup + %d timed steps...\n", name, warmup, steps)
				r, err := bench.Run(cfg, name, warmup, steps, prof)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				results = append(results, r)
			}
			printBenchTable(os.Stdout, results)
			if jsonOut != "" {
				js, _ := json.MarshalIndent(results, "", "  ")
				return os.WriteFile(jsonOut, append(js, '\n'), 0o644)
			}
			return nil
		},
	}
	cf.register(c)
	c.Flags().StringVar(&modes, "modes", "full,compact", "comma-separated: full, compact")
	c.Flags().IntVar(&warmup, "warmup", 3, "untimed steps first")
	c.Flags().IntVar(&steps, "steps", 10, "timed steps")
	c.Flags().StringVar(&jsonOut, "json", "", "also write results to this JSON file")
	c.Flags().BoolVar(&profile, "profile", false, "also time every kernel (CUDA) and print where a step's device time goes")
	return c
}

// printBenchTable prints the results as aligned columns; MFU is "-" where
// the device's peak FLOP/s is unknown (the CPU, unlisted GPUs).
func printBenchTable(out io.Writer, results []bench.Result) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "config\tdevice\ttok/s\tTFLOP/s\tMFU\tpeak memory\tms/step\t")
	for _, r := range results {
		mfu := "-"
		if r.MFU > 0 {
			mfu = fmt.Sprintf("%.1f%%", r.MFU*100)
		}
		fmt.Fprintf(w, "%s\t%s\t%.0f\t%.3g\t%s\t%s\t%.1f\t\n", r.Name, r.Device, r.TokPerS, r.TFLOPS, mfu,
			train.FormatBytes(r.PeakBytes), r.StepMs)
	}
	w.Flush()
}
