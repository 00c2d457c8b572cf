package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/evaluate"
	"github.com/compact-llm/compact/internal/train"
)

// TestRunUsageErrors calls the run functions directly with bad options:
// each error must map to exit 2, name the culprit, and come before any
// output.
func TestRunUsageErrors(t *testing.T) {
	ctx := context.Background()
	out := t.TempDir()
	cases := []struct {
		name string
		run  func(s streams) error
		want string
	}{
		{"pretrain without --out", func(s streams) error { return runPretrain(ctx, pretrainOptions{}, s) }, "--out"},
		{"pretrain --steps 0", func(s streams) error {
			return runPretrain(ctx, pretrainOptions{train: trainFlags{out: out}, given: flagsGiven{"steps": true}}, s)
		}, "--steps 0"},
		{"pretrain bad --set", func(s streams) error {
			return runPretrain(ctx, pretrainOptions{train: trainFlags{out: out}, config: configFlags{sets: []string{"train.lr=-1"}}}, s)
		}, "train.lr"},
		{"pretrain bad --device", func(s streams) error {
			return runPretrain(ctx, pretrainOptions{train: trainFlags{out: out}, config: configFlags{device: "tpu"}}, s)
		}, "train.device"},
		{"finetune without --base", func(s streams) error { return runFinetune(ctx, finetuneOptions{train: trainFlags{out: out}}, s) }, "--base"},
		{"finetune missing base", func(s streams) error {
			return runFinetune(ctx, finetuneOptions{train: trainFlags{out: out}, base: out + "/nothing"}, s)
		}, "--base"},
		{"eval without --checkpoint", func(s streams) error { return runEval(ctx, evalOptions{}, s) }, "--checkpoint"},
		{"eval --batches -1", func(s streams) error {
			return runEval(ctx, evalOptions{batches: -1, given: flagsGiven{"batches": true}}, s)
		}, "--batches -1"},
		{"eval --predictions with --batches", func(s streams) error {
			return runEval(ctx, evalOptions{batches: 2, eval: evaluate.Options{Predictions: "p.jsonl"}}, s)
		}, "--predictions"},
		{"sample NaN --temperature", func(s streams) error {
			return runSample(ctx, sampleOptions{sample: evaluate.SampleOptions{Temperature: math.NaN()}}, s)
		}, "--temperature"},
		{"tokenize without --out", func(s streams) error { return runTokenize(ctx, tokenizeOptions{}, s) }, "--out"},
		{"tokenize unknown tokenizer", func(s streams) error {
			o := tokenizeOptions{tokenizer: "klingon", inputs: []string{"x.txt"}}
			o.tokenize.OutDir = out
			return runTokenize(ctx, o, s)
		}, "klingon"},
		{"bench unknown mode", func(s streams) error { return runBench(ctx, benchOptions{modes: "full,fast", steps: 1}, s) }, "fast"},
		{"bench --steps 0", func(s streams) error { return runBench(ctx, benchOptions{modes: "full"}, s) }, "--steps"},
		{"memreport negative --reserve", func(s streams) error { return runMemreport(ctx, memreportOptions{reserve: -1}, s) }, "--reserve"},
		{"memreport bad --memory", func(s streams) error {
			return runMemreport(ctx, memreportOptions{config: configFlags{device: "cpu"}, ranks: "0.5", memory: "lots", maxBatch: 8}, s)
		}, "--memory"},
		{"memreport bad --ranks", func(s streams) error {
			return runMemreport(ctx, memreportOptions{ranks: "0.5,half", maxBatch: 8}, s)
		}, "half"},
		{"config bad --set", func(s streams) error {
			return runConfig(ctx, configOptions{config: configFlags{sets: []string{"model.num_heads=7"}}}, s)
		}, "model.num_heads"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		err := c.run(streams{out: &stdout, err: &stderr})
		if code := exitCode(err); code != 2 || !strings.Contains(fmt.Sprint(err), c.want) {
			t.Errorf("%s: exit %d, error %v; want exit 2 naming %q", c.name, code, err, c.want)
		}
		if stdout.Len() > 0 {
			t.Errorf("%s: wrote %q to stdout before failing", c.name, stdout.String())
		}
	}
}

// TestCobraErrorsAreUsageErrors runs the command tree in process: every
// mistake cobra itself finds (flags, arguments, command names) arrives as a
// usageError, whatever cobra's wording.
func TestCobraErrorsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"pretrain", "--bogus"},
		{"pretrain", "--steps"},
		{"pretrain", "--steps", "many"},
		{"pretrain", "extra"},
		{"tokenize"},
		{"frobnicate"},
		{"memreport", "--reserve", "lots"},
		{"plot"},
	} {
		root := newRootCmd()
		root.SetArgs(args)
		var buf bytes.Buffer
		root.SetOut(&buf)
		root.SetErr(&buf)
		err := root.Execute()
		var u usageError
		if !errors.As(err, &u) || exitCode(err) != 2 {
			t.Errorf("compact %s: error %v (%T), exit %d; want a usageError, exit 2", strings.Join(args, " "), err, err, exitCode(err))
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("disk full"), 1},
		{usagef("--out DIR is required"), 2},
		{fmt.Errorf("loading: %w", config.Usagef("data.train: no files")), 2},
		{fmt.Errorf("step 7: %w", train.ErrInterrupted), exitInterrupted},
	} {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}
