package main

import (
	"fmt"
	"os"

	"github.com/compact-llm/compact/configs"
	"github.com/compact-llm/compact/internal/train"
	"github.com/spf13/cobra"
)

func newPretrainCmd() *cobra.Command {
	var cf configFlags
	var out string
	var steps int
	var resume, overwrite, allowChange bool
	var job jobFlags
	c := &cobra.Command{
		Use:   "pretrain --config FILE --out DIR",
		Short: "Train a model from scratch (or --resume from the newest checkpoint in DIR)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("--out DIR is required")
			}
			var extra []string
			if steps > 0 {
				extra = append(extra, fmt.Sprintf("train.steps=%d", steps))
			} else if cmd.Flags().Changed("steps") {
				return usagef("--steps %d: must be positive", steps)
			}
			if cf.file == "" {
				// Without a config the library default is a 77M model for
				// 10000 steps: far too much for a first try on a CPU.
				cf.file = configs.Builtin + "tiny.yaml"
				fmt.Fprintln(os.Stderr, "no --config: using the built-in configs/tiny.yaml (a tiny model, 200 steps, minutes on a CPU); pass --config configs/llama-60m.yaml etc. for the paper's sizes")
			}
			cfg, err := cf.load(extra...)
			if err != nil {
				return err
			}
			env, launched, err := job.start(cmd, cfg.Train.Device)
			if launched || err != nil {
				return err
			}
			ctx, stop := interruptContext()
			defer stop()
			return train.Pretrain(ctx, cfg, train.RunOptions{Dist: env, Out: out, Resume: resume, Overwrite: overwrite, AllowConfigChange: allowChange,
				Log: os.Stderr, Progress: interactive(), ResumeCommand: resumeCommand()})
		},
	}
	cf.register(c)
	c.Flags().StringVar(&out, "out", "", "output directory: metrics.jsonl, memreport.json, checkpoints/")
	c.Flags().IntVar(&steps, "steps", 0, "optimizer steps (overrides train.steps)")
	c.Flags().BoolVar(&resume, "resume", false, "continue from the newest complete checkpoint in --out")
	c.Flags().BoolVar(&overwrite, "overwrite", false, "move an existing run in --out aside (to DIR.old-TIMESTAMP) and start a new one")
	job.register(c)
	c.Flags().BoolVar(&allowChange, "allow-config-change", false, "with --resume: continue although optimizer settings (lr, micro_batch, update_gap, ...) changed")
	return c
}
