package main

import (
	"context"
	"fmt"

	"github.com/compact-llm/compact/internal/charts"
	"github.com/spf13/cobra"
)

type plotOptions struct {
	runs []string // run directories, the positional arguments
	out  string
}

func newPlotCmd() *cobra.Command {
	var opts plotOptions
	c := &cobra.Command{
		Use:   "plot RUN_DIR... [--out FILE.png]",
		Short: "Plot training loss, validation loss and learning rate against tokens for run directories (PNG)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.runs = args
			return runPlot(c.Context(), opts, stdStreams())
		},
	}
	c.Flags().StringVar(&opts.out, "out", "runs.png", "image to write: PNG, or by extension SVG, PDF, JPEG")
	return c
}

func runPlot(_ context.Context, opts plotOptions, s streams) error {
	if err := charts.CheckFormat(opts.out); err != nil {
		return usagef("--out: %w", err)
	}
	if err := charts.PlotRuns(opts.runs, opts.out); err != nil {
		return err
	}
	fmt.Fprintln(s.err, "wrote", opts.out)
	return nil
}
