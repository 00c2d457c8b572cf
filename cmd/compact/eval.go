package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/compact-llm/compact/internal/evaluate"
	"github.com/compact-llm/compact/internal/train"
	"github.com/spf13/cobra"
)

// checkpointConfig resolves --checkpoint and builds its run config: the one
// saved in the checkpoint (defaults for an HF directory), then --config,
// variables and --set; the model section from its config.json.
func checkpointConfig(dir string, cf *configFlags, extra []string) (train.Base, train.Config, error) {
	if dir == "" {
		return train.Base{}, train.Config{}, usagef("--checkpoint DIR is required")
	}
	b, err := train.ResolveBase(dir)
	if err != nil {
		return train.Base{}, train.Config{}, usagef("--checkpoint: %w", err)
	}
	sets := append([]string(nil), cf.sets...)
	if cf.device != "" {
		sets = append(sets, "train.device="+cf.device)
	}
	cfg, err := train.LoadForCheckpoint(b, cf.file, append(sets, extra...))
	return b, cfg, err
}

func newEvalCmd() *cobra.Command {
	var cf configFlags
	var ckpt string
	var dataGlobs []string
	var asJSON bool
	var batches int
	var eo evaluate.Options
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
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := positiveFlags(cmd, map[string]int{"batches": batches}); err != nil {
				return err
			}
			if eo.Predictions != "" && batches > 0 {
				return usagef("--predictions covers every row of the set: drop --batches")
			}
			var extra []string
			if len(dataGlobs) > 0 {
				g := strings.Join(dataGlobs, ",")
				// data.train is unused here but must name files for the
				// config to validate.
				extra = append(extra, "data.val="+g, "data.train="+g, "finetune.val_fraction=0")
			}
			if batches > 0 {
				extra = append(extra, fmt.Sprintf("train.eval_batches=%d", batches))
			}
			b, cfg, err := checkpointConfig(ckpt, &cf, extra)
			if err != nil {
				return err
			}
			if cfg.Finetune.Task != train.TaskCausal && len(dataGlobs) == 0 && batches == 0 {
				cfg.Train.EvalBatches = 1 << 30 // JSONL: the whole set
			}
			r, err := evaluate.Checkpoint(b, cfg, eo, os.Stderr)
			if err != nil {
				return err
			}
			if asJSON {
				js, err := json.Marshal(r)
				if err != nil { // a non-finite loss: never print an empty line with exit 0
					return fmt.Errorf("eval result: %w", err)
				}
				fmt.Println(string(js))
				return nil
			}
			fmt.Printf("checkpoint %s (%s)\n", r.Checkpoint, r.Task)
			if r.Loss != nil {
				fmt.Printf("val_loss %.6f\n", *r.Loss)
			} else {
				fmt.Println("val_loss - (no row has a label)")
			}
			if r.Perplexity != nil {
				fmt.Printf("perplexity %.4f\n", *r.Perplexity)
			}
			if r.Accuracy != nil {
				fmt.Printf("accuracy %.4f\n", *r.Accuracy)
			}
			if r.Predictions != "" {
				fmt.Printf("predictions %s (%d rows)\n", r.Predictions, r.Rows)
			}
			return nil
		},
	}
	cf.register(c)
	c.Flags().StringVar(&ckpt, "checkpoint", "", "checkpoint, run or HuggingFace LLaMA directory")
	c.Flags().StringArrayVar(&dataGlobs, "data", nil, "validation shards or JSONL files (repeatable; overrides data.val)")
	c.Flags().IntVar(&batches, "batches", 0, "validation batches (overrides train.eval_batches)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	c.Flags().StringVar(&eo.Predictions, "predictions", "", "classifiers: write one JSON line per row of the set (label, predicted label, probabilities) to FILE")
	return c
}

func newSampleCmd() *cobra.Command {
	var cf configFlags
	var ckpt string
	so := evaluate.SampleOptions{}
	c := &cobra.Command{
		Use:   "sample --checkpoint DIR --prompt TEXT",
		Short: "Generate text from a checkpoint with a KV cache",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := finiteFlags(map[string]float64{"temperature": so.Temperature, "top-p": so.TopP}); err != nil {
				return err
			}
			b, cfg, err := checkpointConfig(ckpt, &cf, nil)
			if err != nil {
				return err
			}
			return evaluate.Sample(b, cfg, so, os.Stdout, os.Stderr)
		},
	}
	cf.register(c)
	c.Flags().StringVar(&ckpt, "checkpoint", "", "checkpoint, run or HuggingFace LLaMA directory")
	c.Flags().StringVar(&so.Prompt, "prompt", "", "text to continue (empty: start a new document)")
	c.Flags().IntVar(&so.MaxTokens, "max-tokens", 128, "tokens to generate at most")
	c.Flags().Float64Var(&so.Temperature, "temperature", 1, "softmax temperature (0: greedy)")
	c.Flags().IntVar(&so.TopK, "top-k", 0, "sample among the k most likely tokens (0: all)")
	c.Flags().Float64Var(&so.TopP, "top-p", 1, "nucleus sampling: smallest set of tokens with this probability (1: off)")
	c.Flags().Uint64Var(&so.Seed, "seed", 0, "sampling seed")
	return c
}
