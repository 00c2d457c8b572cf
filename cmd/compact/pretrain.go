package main

import (
	"context"

	"github.com/compact-llm/compact/internal/train"
	"github.com/spf13/cobra"
)

type pretrainOptions struct {
	config configFlags
	train  trainFlags
	job    jobFlags
	given  flagsGiven
}

func newPretrainCmd() *cobra.Command {
	var opts pretrainOptions
	c := &cobra.Command{
		Use:   "pretrain --config FILE --out DIR",
		Short: "Train a model from scratch (or --resume from the newest checkpoint in DIR)",
		RunE: func(c *cobra.Command, _ []string) error {
			opts.given = givenFlags(c)
			ctx, stop := interruptContext(c.Context())
			defer stop()
			return runPretrain(ctx, opts, stdStreams())
		},
	}
	opts.config.register(c)
	opts.train.register(c)
	opts.job.register(c)
	return c
}

func runPretrain(ctx context.Context, opts pretrainOptions, s streams) error {
	if err := opts.train.check(opts.given); err != nil {
		return err
	}
	opts.config.defaultToTiny(s)
	cfg, err := opts.config.load(opts.train.overrides()...)
	if err != nil {
		return err
	}
	env, launched, err := opts.job.start(opts.given, cfg.Train.Device, s)
	if launched || err != nil {
		return err
	}
	run := opts.train.runOptions("", s)
	run.Dist = env
	return train.Pretrain(ctx, cfg, run)
}
