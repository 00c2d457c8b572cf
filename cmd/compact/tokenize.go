package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

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
		Short: "Turn text, JSONL or Parquet files into llm.c-compatible token shards",
		Long: `tokenize reads text files (one document per file), JSONL (one document per
line, --field names the text) or Parquet (one document per row, --field names
the string column), each optionally compressed (.gz, .zst), and writes
PREFIX_train_NNNNNN.bin and PREFIX_val_NNNNNN.bin shards on every core, with
PREFIX_tokenize.json beside them naming the sources. Documents are separated
by the end-of-text token. --val-fraction is a fraction of the tokens, split at
document boundaries where possible (one file gives its last tokens).`,
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
	f.StringVar(&to.Format, "format", data.InputAuto, strings.Join(data.InputFormats, ", ")+" (auto: by extension)")
	f.StringVar(&to.Field, "field", "text", "JSONL field or Parquet column holding the document")
	f.Float64Var(&to.ValFraction, "val-fraction", 0.01, "fraction of the tokens for validation")
	f.IntVar(&to.ShardTokens, "shard-tokens", data.DefaultShardTokens, "tokens per shard")
	f.StringVar(&to.SpecialTokens, "special-tokens", data.SpecialMap, "special-token text in the documents (such as <|endoftext|> or a chat template's markers): map (to the special ids, as HF's encode) or text (encoded as ordinary text)")
	f.BoolVar(&to.Overwrite, "overwrite", false, "replace shards of this --prefix that an earlier run left in --out")
	return c
}

// progressEvery is how often tokenize prints a progress line when stderr is
// not a terminal.
var progressEvery = 10 * time.Second

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
	if to.SpecialTokens == "" {
		to.SpecialTokens = data.SpecialMap
	}
	if !slices.Contains(data.SpecialTokenModes, to.SpecialTokens) {
		return usagef("--special-tokens %q: want one of %s", to.SpecialTokens, strings.Join(data.SpecialTokenModes, ", "))
	}
	inputs, err := data.ExpandGlobs(opts.inputs)
	if err != nil {
		return usagef("inputs: %w", err)
	}
	if to.ValFraction < 0 || to.ValFraction > 0.5 {
		return usagef("--val-fraction %g: must be in [0, 0.5]", to.ValFraction)
	}
	to.Inputs, to.Tokenizer = inputs, tok
	var total int64
	for _, in := range inputs {
		if st, err := os.Stat(in); err == nil {
			total += st.Size()
		}
	}
	start := time.Now()
	var bar *progressbar.ProgressBar
	if s.tty {
		bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(s.err), progressbar.OptionSetDescription("tokenizing"),
			progressbar.OptionShowBytes(true), progressbar.OptionShowTotalBytes(true), progressbar.OptionSetWidth(20),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish(), progressbar.OptionFullWidth())
		to.Progress = func(p data.TokenizeProgress) { bar.Set64(p.InputBytes) }
	} else {
		next := start.Add(progressEvery)
		to.Progress = func(p data.TokenizeProgress) {
			if now := time.Now(); now.After(next) {
				next = now.Add(progressEvery)
				fmt.Fprintf(s.err, "tokenizing: %s of %s read (%.0f%%), %s/s of text, %d documents, %d tokens, elapsed %s\n",
					mb(p.InputBytes), mb(total), 100*float64(p.InputBytes)/float64(max(total, 1)),
					mb(int64(float64(p.Bytes)/now.Sub(start).Seconds())), p.Documents, p.Tokens, now.Sub(start).Round(time.Second))
			}
		}
	}
	res, err := data.TokenizeFiles(to)
	if bar != nil {
		bar.Exit() // clears its line: the summary starts on its own
	}
	if err != nil {
		return usagef("%w", err) // unreadable or malformed input, or shards left by an earlier run
	}
	secs := max(res.Seconds, 1e-9)
	fmt.Fprintf(s.err, "tokenized %s (%s of text, %d skipped as empty) in %.1fs: %s/s on %d workers\n",
		plural(res.Documents, "document"), mb(res.Bytes), res.Skipped, res.Seconds, mb(int64(float64(res.Bytes)/secs)), res.Workers)
	fmt.Fprintf(s.err, "train: %d tokens in %s; %s\n", res.TrainTokens, plural(len(res.TrainShards), "shard"), res.SplitSummary())
	if len(res.Replaced) > 0 {
		fmt.Fprintf(s.err, "replaced %d shards of an earlier run (--overwrite)\n", len(res.Replaced))
	}
	fmt.Fprintf(s.err, "wrote %s (sources, split, shards)\n", res.Manifest)
	return nil
}

// plural is "1 shard" or "n shards".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// mb formats a byte count in kB, MB or GB (powers of 10, as throughput is
// quoted).
func mb(b int64) string { return scaled(float64(b), " kB", " MB", " GB") }
