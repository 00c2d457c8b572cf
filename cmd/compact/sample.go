package main

import (
	"context"

	"github.com/compact-llm/compact/internal/evaluate"
	"github.com/spf13/cobra"
)

type sampleOptions struct {
	config     configFlags
	checkpoint string
	sample     evaluate.SampleOptions
}

func newSampleCmd() *cobra.Command {
	var opts sampleOptions
	c := &cobra.Command{
		Use:   "sample --checkpoint DIR --prompt TEXT",
		Short: "Generate text from a checkpoint with a KV cache",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runSample(c.Context(), opts, stdStreams())
		},
	}
	opts.config.register(c)
	f, so := c.Flags(), &opts.sample
	f.StringVar(&opts.checkpoint, "checkpoint", "", "checkpoint, run or HuggingFace LLaMA directory")
	f.StringVar(&so.Prompt, "prompt", "", "text to continue (empty: start a new document)")
	f.IntVar(&so.MaxTokens, "max-tokens", 128, "tokens to generate at most")
	f.Float64Var(&so.Temperature, "temperature", 1, "softmax temperature (0: greedy)")
	f.IntVar(&so.TopK, "top-k", 0, "sample among the k most likely tokens (0: all)")
	f.Float64Var(&so.TopP, "top-p", 1, "nucleus sampling: smallest set of tokens with this probability (1: off)")
	f.Uint64Var(&so.Seed, "seed", 0, "sampling seed")
	return c
}

func runSample(_ context.Context, opts sampleOptions, s streams) error {
	if err := finiteFlags(map[string]float64{"temperature": opts.sample.Temperature, "top-p": opts.sample.TopP}); err != nil {
		return err
	}
	b, cfg, err := opts.config.loadCheckpoint(opts.checkpoint)
	if err != nil {
		return err
	}
	return evaluate.Sample(b, cfg, opts.sample, s.out, s.err)
}
