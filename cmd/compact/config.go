package main

import (
	"context"

	"github.com/compact-llm/compact/internal/config"
	"github.com/spf13/cobra"
)

type configOptions struct {
	config     configFlags
	checkpoint string
}

// newConfigCmd prints the resolved configuration without running anything:
// the file, COMPACT_* variables and --set applied and validated. Its output
// is itself a config file.
func newConfigCmd() *cobra.Command {
	var opts configOptions
	c := &cobra.Command{
		Use:   "config [--config FILE] [--set key=value ...] [--checkpoint DIR]",
		Short: "Print the resolved configuration as YAML (a valid --config file) without running",
		Long: `config resolves a configuration exactly as the training commands do (defaults,
then --config, then COMPACT_* variables, then --set), validates it and prints
every key as YAML. With --checkpoint it starts from the run config saved in
that checkpoint instead, as eval and sample do.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runConfig(c.Context(), opts, stdStreams())
		},
	}
	opts.config.register(c)
	c.Flags().StringVar(&opts.checkpoint, "checkpoint", "", "start from the run config saved in this checkpoint or run directory")
	return c
}

func runConfig(_ context.Context, opts configOptions, s streams) error {
	cfg, err := resolveConfig(opts, s)
	if err != nil {
		return err
	}
	y, err := cfg.YAML()
	if err != nil {
		return err
	}
	_, err = s.out.Write(y)
	return err
}

// resolveConfig is the config from the defaults, or from --checkpoint's.
func resolveConfig(opts configOptions, s streams) (config.Config, error) {
	if opts.checkpoint == "" {
		opts.config.defaultToTiny(s)
		return opts.config.load()
	}
	_, cfg, err := opts.config.loadCheckpoint(opts.checkpoint)
	if err != nil {
		return config.Config{}, err
	}
	// LoadForCheckpoint leaves validation to the command that runs.
	if err := cfg.Validate(); err != nil {
		return config.Config{}, usageError{err}
	}
	return cfg, nil
}
