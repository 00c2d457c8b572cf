package main

import (
	"context"
	"strings"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/train"
	"github.com/spf13/cobra"
)

type finetuneOptions struct {
	config configFlags
	train  trainFlags
	job    jobFlags
	base   string
	given  flagsGiven
}

func newFinetuneCmd() *cobra.Command {
	var opts finetuneOptions
	c := &cobra.Command{
		Use:   "finetune --base DIR --config FILE --out DIR",
		Short: "Fine-tune a checkpoint or HuggingFace LLaMA directory (task " + strings.Join(config.Tasks, ", ") + ")",
		Long: `finetune starts from the weights of --base: a HuggingFace LLaMA directory
(config.json + model.safetensors or a sharded model.safetensors.index.json),
one of our checkpoints/step-N directories, or a run directory (its newest
checkpoint). The model section comes from the base's config.json; model.*
keys in --config or --set must equal it. finetune.task selects causal
(token shards), completion (JSONL prompt/completion, loss on the completion)
or classify (JSONL text/label, a score.weight head).`,
		RunE: func(c *cobra.Command, _ []string) error {
			opts.given = givenFlags(c)
			ctx, stop := interruptContext(c.Context())
			defer stop()
			return runFinetune(ctx, opts, stdStreams())
		},
	}
	opts.config.register(c)
	c.Flags().StringVar(&opts.base, "base", "", "checkpoint or HuggingFace LLaMA directory to start from")
	opts.train.register(c)
	opts.job.register(c)
	return c
}

func runFinetune(ctx context.Context, opts finetuneOptions, s streams) error {
	if err := opts.train.check(opts.given); err != nil {
		return err
	}
	if opts.base == "" {
		return usagef("--base DIR is required")
	}
	b, err := checkpoint.ResolveBase(opts.base)
	if err != nil {
		return usagef("--base: %w", err)
	}
	cfg, err := opts.config.loadFinetune(b, opts.train.overrides()...)
	if err != nil {
		return err
	}
	env, launched, err := opts.job.start(opts.given, cfg.Train.Device, s)
	if launched || err != nil {
		return err
	}
	run := opts.train.runOptions(b.Dir, s)
	run.Dist = env
	return train.Finetune(ctx, cfg, run)
}
