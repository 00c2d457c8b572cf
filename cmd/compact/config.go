package main

import (
	"os"

	"github.com/compact-llm/compact/internal/train"
	"github.com/spf13/cobra"
)

// newConfigCmd prints the resolved configuration without running anything:
// the file, COMPACT_* variables and --set applied and validated. Its output
// is itself a config file.
func newConfigCmd() *cobra.Command {
	var cf configFlags
	var ckpt string
	c := &cobra.Command{
		Use:   "config [--config FILE] [--set key=value ...] [--checkpoint DIR]",
		Short: "Print the resolved configuration as YAML (a valid --config file) without running",
		Long: `config resolves a configuration exactly as the training commands do (defaults,
then --config, then COMPACT_* variables, then --set), validates it and prints
every key as YAML. With --checkpoint it starts from the run config saved in
that checkpoint instead, as eval and sample do.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg train.Config
			var err error
			if ckpt != "" {
				_, cfg, err = checkpointConfig(ckpt, &cf, nil)
				if err == nil {
					err = cfg.Validate()
					if err != nil {
						err = &train.UsageError{Err: err}
					}
				}
			} else {
				cfg, err = cf.load()
			}
			if err != nil {
				return err
			}
			y, err := cfg.YAML()
			if err != nil {
				return err
			}
			_, err = os.Stdout.Write(y)
			return err
		},
	}
	cf.register(c)
	c.Flags().StringVar(&ckpt, "checkpoint", "", "start from the run config saved in this checkpoint or run directory")
	return c
}
