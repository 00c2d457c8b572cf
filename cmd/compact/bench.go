package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

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
			var results []train.BenchResult
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
				r, err := train.Bench(cfg, name, warmup, steps, prof)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				fmt.Println(r)
				results = append(results, r)
			}
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
