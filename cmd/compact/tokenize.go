package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/compact-llm/compact/internal/data"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

type tokenizeOptions struct {
	inputs    []string // files or globs, the positional arguments
	tokenizer string
	tokenize  data.TokenizeOptions
	given     flagsGiven
}

func newTokenizeCmd() *cobra.Command {
	var opts tokenizeOptions
	c := &cobra.Command{
		Use:   "tokenize --out DIR [flags] FILE_OR_GLOB...",
		Short: "Turn text files or JSONL into llm.c-compatible token shards",
		Long: `tokenize reads text files (one document per file) or JSONL (one document
per line, --field names the text) and writes PREFIX_train_NNNNNN.bin and
PREFIX_val_NNNNNN.bin shards. Documents are separated by the end-of-text token.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.inputs, opts.given = args, givenFlags(c)
			return runTokenize(c.Context(), opts, stdStreams())
		},
	}
	f, to := c.Flags(), &opts.tokenize
	f.StringVar(&opts.tokenizer, "tokenizer", data.TokenizerGPT2, strings.Join(data.TokenizerNames, ", ")+", or a tokenizer.json")
	f.StringVar(&to.OutDir, "out", "", "output directory for the shards")
	f.StringVar(&to.Prefix, "prefix", "", "shard name prefix")
	f.StringVar(&to.Format, "format", data.InputAuto, strings.Join(data.InputFormats, ", "))
	f.StringVar(&to.Field, "field", "text", "JSONL field holding the document")
	f.Float64Var(&to.ValFraction, "val-fraction", 0.01, "fraction of documents for validation")
	f.IntVar(&to.ShardTokens, "shard-tokens", data.DefaultShardTokens, "tokens per shard")
	return c
}

func runTokenize(_ context.Context, opts tokenizeOptions, s streams) error {
	to := opts.tokenize
	if to.OutDir == "" {
		return usagef("--out DIR is required")
	}
	if err := opts.given.positive(map[string]int{"shard-tokens": to.ShardTokens}); err != nil {
		return err
	}
	if err := finiteFlags(map[string]float64{"val-fraction": to.ValFraction}); err != nil {
		return err
	}
	tok, err := data.NewTokenizer(opts.tokenizer)
	if err != nil {
		return usagef("--tokenizer: %w", err)
	}
	inputs, err := data.ExpandGlobs(opts.inputs)
	if err != nil {
		return usagef("inputs: %w", err)
	}
	if to.ValFraction < 0 || to.ValFraction > 0.5 {
		return usagef("--val-fraction %g: must be in [0, 0.5]", to.ValFraction)
	}
	to.Inputs, to.Tokenizer = inputs, tok
	if s.tty {
		bar := progressbar.DefaultBytes(-1, "tokenizing")
		var last int64
		to.Progress = func(p data.TokenizeProgress) {
			bar.Add64(p.Bytes - last)
			last = p.Bytes
		}
		defer bar.Finish()
	}
	res, err := data.TokenizeFiles(to)
	if err != nil {
		return usagef("tokenize: %w", err) // unreadable or malformed input
	}
	fmt.Fprintf(s.err, "%d documents (%d bytes): %d train tokens in %d shards, %d val tokens in %d shards, in %s\n",
		res.Documents, res.Bytes, res.TrainTokens, len(res.TrainShards), res.ValTokens, len(res.ValShards), to.OutDir)
	return nil
}
