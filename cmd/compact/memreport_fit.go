package main

// memreport's fit ranking: which variants of the config fit the memory at
// its own batch, fastest first, and the --set of the best one to paste.

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu/device"
	"github.com/compact-llm/compact/internal/memreport"
	"github.com/compact-llm/compact/internal/train"
)

// fitReport ranks cfg's variants against tg's memory less the reserve.
// Each variant is loaded exactly as `--config F --set ...` would load it,
// so the --set printed reproduce its prediction.
func fitReport(cfg config.Config, opts memreportOptions, tg target, reserve int64) (*memreport.FitReport, error) {
	req := memreport.FitRequest{Config: cfg, Limit: tg.limit - reserve,
		Build: func(sets []string) (config.Config, error) { return opts.config.load(sets...) },
		Peak: func(vc config.Config) (int64, error) {
			if config.CheckActivationSize(vc) != nil {
				return math.MaxInt64, nil // beyond any memory, and beyond safe size arithmetic
			}
			p, _, err := train.PredictRankMemory(vc, vc.Train.MicroBatch, vc.Train.SeqLen, tg.backend, max(opts.gpus, 1))
			return p.PeakAll, err
		}}
	if opts.batch > 0 {
		req.Base = []string{fmt.Sprintf("train.micro_batch=%d", opts.batch)}
	}
	if opts.given["ranks"] {
		rs, err := parseRanks(opts.ranks)
		if err != nil {
			return nil, err
		}
		req.Ranks = rs
	}
	return memreport.Fit(req)
}

// fitRow is the ranking's row in the default table: the best variant, or
// the closest when nothing fits, with its role.
func fitRow(f *memreport.FitReport, microBatch int) (*memreport.Candidate, string) {
	switch {
	case f.Best != nil:
		return f.Best, memreport.RoleBestFit + roleSets(f.Best.Set)
	case f.Closest != nil:
		return f.Closest, fmt.Sprintf("nothing fits %s GiB at micro-batch %d; the closest", gib(f.LimitBytes), microBatch) + roleSets(f.Closest.Set)
	}
	return nil, ""
}

func roleSets(sets []string) string {
	if len(sets) == 0 {
		return ""
	}
	return ": " + setFlags(sets)
}

// setFlags is sets as command-line flags.
func setFlags(sets []string) string {
	if len(sets) == 0 {
		return "the config as written (no --set)"
	}
	return "--set " + strings.Join(sets, " --set ")
}

// cardName says what the ranking fits, with the preposition "best" takes:
// a GPU of the limit, or the CPU backend's layout in that much memory.
func cardName(tg target) (name, prep string) {
	if tg.backend == device.CPU {
		return gib(tg.limit) + " GiB on the CPU backend", "in"
	}
	size := gib(tg.limit)
	article := "a"
	if strings.HasPrefix(size, "8") || strings.HasPrefix(size, "11.") || strings.HasPrefix(size, "18.") {
		article = "an" // eight, eleven, eighteen, eighty...
	}
	return article + " " + size + " GiB GPU", "on"
}

// lastResort says why c compresses o_proj, when it does.
func lastResort(out io.Writer, c *memreport.Candidate) {
	if c.LastResort {
		fmt.Fprintln(out, "(it compresses o_proj, whose cost in quality is not measured yet: chosen because nothing without it fits)")
	}
}

// needs is a candidate's predicted peak.
func needs(c *memreport.Candidate) string {
	if c.PeakBytes == math.MaxInt64 {
		return "more than any memory"
	}
	return gib(c.PeakBytes) + " GiB"
}

// over says by how much a candidate misses the limit.
func over(c *memreport.Candidate, limit int64) string {
	if c.PeakBytes == math.MaxInt64 {
		return "far over"
	}
	return gib(c.PeakBytes-limit) + " GiB over"
}

func printFit(out io.Writer, f *memreport.FitReport, tg target, reserve int64, userSets bool) {
	card, prep := cardName(tg)
	fmt.Fprintf(out, "\nwhat fits %s (%s GiB after the %s GiB reserve) at micro-batch %d x grad_accum %d, fastest first:\n",
		card, gib(f.LimitBytes), gib(reserve), f.MicroBatch, f.GradAccum)
	if len(f.Ranked) > 0 {
		w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "\tspeed\tpeak GiB\tvariant\t--set")
		for i, c := range f.Ranked {
			mark, sets := " ", strings.Join(c.Set, " ")
			if i == 0 {
				mark = "*"
			}
			if sets == "" {
				sets = "(as written)"
			}
			fmt.Fprintf(w, "%s\t%.2fx\t%s\t%s\t%s\n", mark, c.Speed, gib(c.PeakBytes), c.Variant.Name, sets)
		}
		w.Flush()
	}
	if c := f.Faster; c != nil {
		fmt.Fprintf(out, "faster but over the limit: %s (%.2fx) needs %s, %s\n", c.Variant.Name, c.Speed, needs(c), over(c, f.LimitBytes))
	}
	for _, l := range f.LeftOut {
		fmt.Fprintf(out, "left out, %d variant(s): %s\n", len(l.Variants), l.Reason)
	}
	fmt.Fprintf(out, "speed: modelled from FLOPs per token; recomputed forward FLOPs weigh %.2f, fitted to %s's measured tok/s (H200);\n"+
		"precisions and the fused update count as free (docs/memory.md)\n", f.RerunWeight, f.CalibratedOn)
	if tg.backend == device.CPU {
		fmt.Fprintln(out, "(predicted for the CPU backend, which keeps fp32 weights and activations: --device cuda predicts a GPU of --memory)")
	}
	also := ""
	if userSets {
		also = " (besides this command's --set)"
	}
	if f.Best != nil {
		fmt.Fprintf(out, "best %s %s%s: %s\n", prep, card, also, setFlags(f.Best.Set))
		lastResort(out, f.Best)
		return
	}
	if f.Closest == nil {
		fmt.Fprintln(out, "nothing fits, and no variant could be built (see the notes above)")
		return
	}
	fmt.Fprintf(out, "nothing fits at micro-batch %d x grad_accum %d: the closest, %s, needs %s, %s\n",
		f.MicroBatch, f.GradAccum, f.Closest.Variant.Name, needs(f.Closest), over(f.Closest, f.LimitBytes))
	switch s := f.Split; {
	case s == nil:
		fmt.Fprintln(out, "(micro-batch 1 leaves no smaller split of the batch)")
	case s.Best != nil:
		fmt.Fprintf(out, "at the same global batch, micro-batch %d x grad_accum %d fits: %s (%.2fx) needs %s\n",
			s.MicroBatch, s.GradAccum, s.Best.Variant.Name, s.Best.Speed, needs(s.Best))
		fmt.Fprintf(out, "best %s %s%s: %s\n", prep, card, also, setFlags(s.Best.Set))
		lastResort(out, s.Best)
	case s.Closest != nil:
		fmt.Fprintf(out, "not even micro-batch 1 x grad_accum %d fits: there the closest, %s, needs %s, %s\n",
			s.GradAccum, s.Closest.Variant.Name, needs(s.Closest), over(s.Closest, f.LimitBytes))
	default:
		fmt.Fprintf(out, "not even micro-batch 1 x grad_accum %d fits\n", s.GradAccum)
	}
}
