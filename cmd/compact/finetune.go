package main

import (
	"fmt"
	"os"

	"github.com/compact-llm/compact/internal/train"
	"github.com/spf13/cobra"
)

func newFinetuneCmd() *cobra.Command {
	var cf configFlags
	var out, base string
	var steps int
	var resume, overwrite, allowChange bool
	var job jobFlags
	c := &cobra.Command{
		Use:   "finetune --base DIR --config FILE --out DIR",
		Short: "Fine-tune a checkpoint or HuggingFace LLaMA directory (causal, completion or classify)",
		Long: `finetune starts from the weights of --base: a HuggingFace LLaMA directory
(config.json + model.safetensors or a sharded model.safetensors.index.json),
one of our checkpoints/step-N directories, or a run directory (its newest
checkpoint). The model section comes from the base's config.json; model.*
keys in --config or --set must equal it. finetune.task selects causal
(token shards), completion (JSONL prompt/completion, loss on the completion)
or classify (JSONL text/label, a score.weight head).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("--out DIR is required")
			}
			if base == "" {
				return usagef("--base DIR is required")
			}
			b, err := train.ResolveBase(base)
			if err != nil {
				return usagef("--base: %w", err)
			}
			sets := append([]string(nil), cf.sets...)
			if cf.device != "" {
				sets = append(sets, "train.device="+cf.device)
			}
			if steps > 0 {
				sets = append(sets, fmt.Sprintf("train.steps=%d", steps))
			} else if cmd.Flags().Changed("steps") {
				return usagef("--steps %d: must be positive", steps)
			}
			cfg, err := train.LoadFinetune(b, cf.file, sets)
			if err != nil {
				return err
			}
			env, launched, err := job.start(cmd, cfg.Train.Device)
			if launched || err != nil {
				return err
			}
			ctx, stop := interruptContext()
			defer stop()
			return train.Finetune(ctx, cfg, train.RunOptions{Dist: env, Out: out, Base: b.Dir, Resume: resume, Overwrite: overwrite, AllowConfigChange: allowChange,
				Log: os.Stderr, Progress: interactive(), ResumeCommand: resumeCommand()})
		},
	}
	cf.register(c)
	c.Flags().StringVar(&base, "base", "", "checkpoint or HuggingFace LLaMA directory to start from")
	c.Flags().StringVar(&out, "out", "", "output directory: metrics.jsonl, memreport.json, checkpoints/")
	c.Flags().IntVar(&steps, "steps", 0, "optimizer steps (overrides train.steps)")
	c.Flags().BoolVar(&resume, "resume", false, "continue from the newest complete checkpoint in --out")
	c.Flags().BoolVar(&overwrite, "overwrite", false, "move an existing run in --out aside (to DIR.old-TIMESTAMP) and start a new one")
	job.register(c)
	c.Flags().BoolVar(&allowChange, "allow-config-change", false, "with --resume: continue although optimizer settings (lr, micro_batch, update_gap, ...) changed")
	return c
}
