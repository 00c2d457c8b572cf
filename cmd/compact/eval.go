package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/evaluate"
	"github.com/spf13/cobra"
)

type evalOptions struct {
	config     configFlags
	checkpoint string
	data       []string
	asJSON     bool
	batches    int
	eval       evaluate.Options
	given      flagsGiven
}

func newEvalCmd() *cobra.Command {
	var opts evalOptions
	c := &cobra.Command{
		Use:   "eval --checkpoint DIR [--config FILE] [--data GLOB ...]",
		Short: "Validation loss and perplexity (accuracy for classifiers) of a checkpoint",
		Long: `eval evaluates a checkpoint of ours or a HuggingFace LLaMA directory on the
validation set of its run config (saved in trainer_state.json), of --config,
or of --data: token shards for causal models, JSONL for the completion and
classify tasks. Shards are read for train.eval_batches batches (--batches);
JSONL sets are read whole. For a classifier, --predictions FILE writes one
JSON line per row of the set: row, file, line, label (when the row has
one), predicted label and the probability of every label, labels named by
the classifier's id2label when it has names.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			opts.given = givenFlags(c)
			return runEval(c.Context(), opts, stdStreams())
		},
	}
	opts.config.register(c)
	f := c.Flags()
	f.StringVar(&opts.checkpoint, "checkpoint", "", "checkpoint, run or HuggingFace LLaMA directory")
	f.StringArrayVar(&opts.data, "data", nil, "validation shards or JSONL files (repeatable; overrides data.val)")
	f.IntVar(&opts.batches, "batches", 0, "validation batches (overrides train.eval_batches)")
	f.BoolVar(&opts.asJSON, "json", false, "print the result as one JSON object")
	f.StringVar(&opts.eval.Predictions, "predictions", "", "classifiers: write one JSON line per row of the set (label, predicted label, probabilities) to FILE")
	return c
}

func runEval(_ context.Context, opts evalOptions, s streams) error {
	if err := opts.given.positive(map[string]int{"batches": opts.batches}); err != nil {
		return err
	}
	if opts.eval.Predictions != "" && opts.batches > 0 {
		return usagef("--predictions covers every row of the set: drop --batches")
	}
	var extra []string
	if len(opts.data) > 0 {
		g := strings.Join(opts.data, ",")
		// data.train is unused here but must name files for the config to
		// validate.
		extra = append(extra, "data.val="+g, "data.train="+g, "finetune.val_fraction=0")
	}
	if opts.batches > 0 {
		extra = append(extra, fmt.Sprintf("train.eval_batches=%d", opts.batches))
	}
	b, cfg, err := opts.config.loadCheckpoint(opts.checkpoint, extra...)
	if err != nil {
		return err
	}
	if cfg.Finetune.Task != config.TaskCausal && len(opts.data) == 0 && opts.batches == 0 {
		cfg.Train.EvalBatches = 1 << 30 // JSONL: the whole set
	}
	r, err := evaluate.Checkpoint(b, cfg, opts.eval, s.err)
	if err != nil {
		return err
	}
	if opts.asJSON {
		js, err := json.Marshal(r)
		if err != nil { // a non-finite loss: never print an empty line with exit 0
			return fmt.Errorf("eval result of %s: %w", r.Checkpoint, err)
		}
		_, err = fmt.Fprintln(s.out, string(js))
		return err
	}
	fmt.Fprintf(s.out, "checkpoint %s (%s)\n", r.Checkpoint, r.Task)
	if r.Loss != nil {
		fmt.Fprintf(s.out, "val_loss %.6f\n", *r.Loss)
	} else {
		fmt.Fprintln(s.out, "val_loss - (no row has a label)")
	}
	if r.Perplexity != nil {
		fmt.Fprintf(s.out, "perplexity %.4f\n", *r.Perplexity)
	}
	if r.Accuracy != nil {
		fmt.Fprintf(s.out, "accuracy %.4f\n", *r.Accuracy)
	}
	if r.Predictions != "" {
		fmt.Fprintf(s.out, "predictions %s (%d rows)\n", r.Predictions, r.Rows)
	}
	return nil
}
