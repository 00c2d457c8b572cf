package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/compact-llm/compact/internal/data"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

func newTokenizeCmd() *cobra.Command {
	var opts data.TokenizeOptions
	var tokName string
	c := &cobra.Command{
		Use:   "tokenize --out DIR [flags] FILE_OR_GLOB...",
		Short: "Turn text files or JSONL into llm.c-compatible token shards",
		Long: `tokenize reads text files (one document per file) or JSONL (one document
per line, --field names the text) and writes PREFIX_train_NNNNNN.bin and
PREFIX_val_NNNNNN.bin shards. Documents are separated by the end-of-text token.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.OutDir == "" {
				return usagef("--out DIR is required")
			}
			if err := positiveFlags(cmd, map[string]int{"shard-tokens": opts.ShardTokens}); err != nil {
				return err
			}
			if err := finiteFlags(map[string]float64{"val-fraction": opts.ValFraction}); err != nil {
				return err
			}
			tok, err := data.NewTokenizer(tokName)
			if err != nil {
				return usagef("--tokenizer: %w", err)
			}
			inputs, err := data.ExpandGlobs(args)
			if err != nil {
				return usagef("inputs: %w", err)
			}
			if opts.ValFraction < 0 || opts.ValFraction > 0.5 {
				return usagef("--val-fraction %g: must be in [0, 0.5]", opts.ValFraction)
			}
			opts.Inputs, opts.Tokenizer = inputs, tok
			if interactive() {
				bar := progressbar.DefaultBytes(-1, "tokenizing")
				var last int64
				opts.Progress = func(p data.TokenizeProgress) {
					bar.Add64(p.Bytes - last)
					last = p.Bytes
				}
				defer bar.Finish()
			}
			res, err := data.TokenizeFiles(opts)
			if err != nil {
				return usagef("tokenize: %w", err) // unreadable or malformed input
			}
			fmt.Fprintf(os.Stderr, "%d documents (%d bytes): %d train tokens in %d shards, %d val tokens in %d shards, in %s\n",
				res.Documents, res.Bytes, res.TrainTokens, len(res.TrainShards), res.ValTokens, len(res.ValShards), opts.OutDir)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&tokName, "tokenizer", data.TokenizerGPT2, strings.Join(data.TokenizerNames, " or ")+", or a tokenizer.json")
	f.StringVar(&opts.OutDir, "out", "", "output directory for the shards")
	f.StringVar(&opts.Prefix, "prefix", "", "shard name prefix")
	f.StringVar(&opts.Format, "format", data.InputAuto, "auto, text or jsonl")
	f.StringVar(&opts.Field, "field", "text", "JSONL field holding the document")
	f.Float64Var(&opts.ValFraction, "val-fraction", 0.01, "fraction of documents for validation")
	f.IntVar(&opts.ShardTokens, "shard-tokens", data.DefaultShardTokens, "tokens per shard")
	return c
}
