package main

import (
	"fmt"
	"os"

	"github.com/compact-llm/compact/internal/charts"
	"github.com/spf13/cobra"
)

func newPlotCmd() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "plot RUN_DIR... [--out FILE.png]",
		Short: "Plot training loss, validation loss and learning rate against tokens for run directories (PNG)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := charts.PlotRuns(args, out); err != nil {
				return err
			}
			fmt.Fprintln(os.Stderr, "wrote", out)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "runs.png", "PNG file to write")
	return c
}
