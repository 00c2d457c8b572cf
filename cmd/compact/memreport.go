package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/compact-llm/compact/internal/charts"
	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/device"
	"github.com/compact-llm/compact/internal/memreport"
	"github.com/compact-llm/compact/internal/train"
	"github.com/spf13/cobra"
)

type memreportOptions struct {
	config                          configFlags
	memory, ranks, variants, plotTo string
	batch, maxBatch, gpus           int
	measure, asJSON, all            bool
	reserve                         float64 // GiB
	given                           flagsGiven
}

func newMemreportCmd() *cobra.Command {
	var opts memreportOptions
	c := &cobra.Command{
		Use:   "memreport [--config FILE] [--batch B] [--gpus N] [--memory 80GiB] [--all] [--measure] [--json] [--plot FILE.png]",
		Short: "Predict (and measure) peak device memory by category for full-rank and CompAct variants",
		Long: `memreport predicts the peak memory of training steps by category, on the
device in use (--device: a GPU, or this host's memory on the CPU), and the
largest micro-batch that fits. By default it reports the config as written,
full rank, CompAct at each of --ranks and the lean configuration; --all lists
every variant, --variants the ones named. Unless --variants, it then ranks the
variants of the config that fit --memory (less --reserve) at the config's own
micro-batch and accumulation by predicted speed, and prints the --set of the
best (or, where nothing fits, the closest and a smaller micro-batch at the same
global batch that does). --measure runs real steps on the same device and
prints the measured peaks beside the prediction. Without --config it uses the
built-in configs/tiny.yaml, as pretrain does.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			opts.given = givenFlags(c)
			return runMemreport(c.Context(), opts, stdStreams())
		},
	}
	opts.config.register(c)
	f := c.Flags()
	f.IntVar(&opts.batch, "batch", 0, "micro-batch to report (default train.micro_batch)")
	f.StringVar(&opts.memory, "memory", "", "device memory to fit in, e.g. 80GiB (default: the device's: the GPU's, or this host's on the CPU; 80GiB for --device cuda on a machine without one)")
	f.Float64Var(&opts.reserve, "reserve", 1.0, "GiB kept free for the CUDA context, kernels and allocator rounding when finding the largest micro-batch")
	f.StringVar(&opts.ranks, "ranks", "0.5,0.25,0.125", "CompAct ranks to compare (fractions of each layer's width, or absolute); given, also the ranks the fit ranking tries besides the config's (default: 0.25)")
	f.BoolVar(&opts.all, "all", false, "report every variant (every rank, recomputation policy, precision, fused update, o_proj compressed and bf16 gradient sums), not the default few")
	f.StringVar(&opts.variants, "variants", "", "only variants whose names start with one of these (comma-separated), e.g. full+none,r0.25+none")
	f.IntVar(&opts.maxBatch, "max-batch", 4096, "largest micro-batch the search tries")
	f.IntVar(&opts.gpus, "gpus", 1, "predict the per-GPU peak of a data-parallel job of N GPUs: with train.zero 1 each holds its share of the optimizer state (the largest share is reported)")
	f.BoolVar(&opts.measure, "measure", false, "also run real steps on the device and report the measured peaks")
	f.BoolVar(&opts.asJSON, "json", false, "print JSON instead of the table")
	f.StringVar(&opts.plotTo, "plot", "", "write a bar chart of the predictions by category (PNG, or by extension SVG, PDF, JPEG)")
	return c
}

// check refuses flag values that make no sense.
func (opts memreportOptions) check() error {
	if err := opts.given.positive(map[string]int{"batch": opts.batch, "max-batch": opts.maxBatch, "gpus": opts.gpus}); err != nil {
		return err
	}
	if opts.gpus > 1 && opts.measure {
		return usagef("--measure with --gpus %d: the measurement runs one process; a job's ranks report their own peaks in memreport.json", opts.gpus)
	}
	if opts.all && opts.variants != "" {
		return usagef("--all and --variants: --all reports every variant, --variants the ones named; give one")
	}
	if err := finiteFlags(map[string]float64{"reserve": opts.reserve}); err != nil {
		return err
	}
	if opts.reserve < 0 {
		return usagef("--reserve %g: must not be negative", opts.reserve)
	}
	if opts.maxBatch > 1<<20 {
		return usagef("--max-batch %d: at most %d", opts.maxBatch, 1<<20)
	}
	if opts.plotTo != "" {
		if err := charts.CheckFormat(opts.plotTo); err != nil {
			return usagef("--plot: %w", err)
		}
	}
	return nil
}

func runMemreport(_ context.Context, opts memreportOptions, s streams) error {
	if err := opts.check(); err != nil {
		return err
	}
	opts.config.defaultToTiny(s)
	cfg, err := opts.config.load()
	if err != nil {
		return err
	}
	if opts.batch > 0 {
		// The sizes training checks, before anything is built for them.
		cfg.Train.MicroBatch = opts.batch
		if err := cfg.Validate(); err != nil {
			return usagef("--batch %d: %w", opts.batch, err)
		}
	}
	rs, err := parseRanks(opts.ranks)
	if err != nil {
		return err
	}
	tg, err := memoryTarget(cfg.Train.Device, opts.memory, opts.measure)
	if err != nil {
		return err
	}
	reserveBytes := int64(opts.reserve * (1 << 30))
	vs, cfgs, fit, err := reportVariants(cfg, rs, opts, tg, reserveBytes)
	if err != nil {
		return err
	}
	var rows []memreport.Row
	for _, v := range vs {
		vc, ok := cfgs[v.Name]
		if !ok {
			vc = v.Apply(cfg)
		}
		row, err := memRow(vc, v, tg, reserveBytes, opts)
		if err != nil {
			return err
		}
		rows = append(rows, row)
	}
	name := opts.config.file
	title := fmt.Sprintf("%s: micro-batch %d x %d tokens on %s", name, cfg.Train.MicroBatch, cfg.Train.SeqLen, tg.desc)
	if opts.gpus > 1 {
		title += perGPUNote(opts.gpus, cfg.Train.Zero)
	}
	if opts.plotTo != "" {
		if err := charts.PlotMemory(rows, title, tg.limit, opts.plotTo); err != nil {
			return fmt.Errorf("plot %s: %w", opts.plotTo, err)
		}
	}
	if opts.asJSON {
		rep := map[string]any{"title": title, "device": tg.desc, "backend": tg.backend, "memory_bytes": tg.limit,
			"reserve_bytes": reserveBytes, "rows": rows}
		if fit != nil {
			rep["fit"] = fit
		}
		js, _ := json.MarshalIndent(rep, "", "  ")
		_, err := fmt.Fprintln(s.out, string(js))
		return err
	}
	printMemTable(s.out, rows, title, reserveBytes, opts.maxBatch, opts.measure)
	if !opts.all && opts.variants == "" {
		fmt.Fprintln(s.out, "(--all lists every variant: each rank, recomputation policy, precision, fused update, o_proj compressed and bf16 gradient sums)")
	}
	if fit != nil {
		printFit(s.out, fit, tg, reserveBytes, len(opts.config.sets) > 0)
	}
	return nil
}

// reportVariants are the variants to report: --variants' or --all's, else
// the default few; and, unless --variants, the fit ranking, whose best
// variant (or closest, when nothing fits) joins the rows. cfgs holds the
// configs the ranking built for them, loaded from the printed --set, so the
// row shows exactly what those give.
func reportVariants(cfg config.Config, rs []float64, opts memreportOptions, tg target, reserve int64) (vs []memreport.Variant, cfgs map[string]config.Config, fit *memreport.FitReport, err error) {
	if opts.variants != "" {
		vs := memreport.Variants(rs, strings.Split(opts.variants, ","))
		if len(vs) == 0 {
			return nil, nil, nil, usagef("--variants %q matches no variant", opts.variants)
		}
		return vs, nil, nil, nil
	}
	vs = memreport.Defaults(cfg, rs)
	if fit, err = fitReport(cfg, opts, tg, reserve); err != nil {
		return nil, nil, nil, err
	}
	cfgs = map[string]config.Config{}
	if c, role := fitRow(fit, cfg.Train.MicroBatch); c != nil {
		v := c.Variant
		v.Role = role
		vs = memreport.Merge(vs, v)
		cfgs[v.Name] = c.Config
	}
	if opts.all {
		for _, v := range memreport.Variants(rs, nil) {
			vs = memreport.Merge(vs, v)
		}
	}
	return vs, cfgs, fit, nil
}

// memRow predicts (and with --measure measures) variant v, whose config
// is vc.
func memRow(vc config.Config, v memreport.Variant, tg target, reserveBytes int64, opts memreportOptions) (memreport.Row, error) {
	if err := vc.Validate(); err != nil {
		return memreport.Row{}, usagef("variant %s: %w", v.Name, err)
	}
	p, _, err := train.PredictRankMemory(vc, vc.Train.MicroBatch, vc.Train.SeqLen, tg.backend, max(opts.gpus, 1))
	if err != nil {
		return memreport.Row{}, fmt.Errorf("variant %s: %w", v.Name, err)
	}
	row := memreport.Row{Variant: v, Predicted: gpu.ByName(p.PeakAt), Kinds: p.Kinds}
	row.Predicted["total"] = p.PeakAll
	if row.MaxBatch, err = memreport.MaxMicroBatch(vc, vc.Train.SeqLen, tg.backend, tg.limit, reserveBytes, opts.maxBatch, max(opts.gpus, 1)); err != nil {
		return memreport.Row{}, err
	}
	if opts.measure {
		m, err := memreport.Measure(vc, vc.Train.MicroBatch, 2)
		if err != nil {
			return memreport.Row{}, fmt.Errorf("variant %s: measuring: %w", v.Name, err)
		}
		row.Measured = gpu.ByName(m.PeakAt)
		row.Measured["total"] = m.PeakAll
		row.DriverUsed = m.DriverUsed
		e := 100 * float64(p.PeakAll-m.PeakAll) / float64(m.PeakAll)
		row.ErrorPercent = &e
	}
	return row, nil
}

// perGPUNote says in a table title what a per-GPU prediction of a job
// counts.
func perGPUNote(gpus, zero int) string {
	state := "the whole optimizer state on each (train.zero 0)"
	if zero == config.ZeroState {
		state = "the largest share of the optimizer state and of any fp32 master (train.zero 1)"
	}
	return fmt.Sprintf(", per GPU of %d: %s; NCCL's buffers not included", gpus, state)
}

func parseRanks(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r <= 0 {
			return nil, usagef("--ranks: %q is not a positive number", f)
		}
		out = append(out, r)
	}
	return out, nil
}

// target is the device a report predicts for: the backend whose layout
// and element sizes to predict, the memory to fit in, and its description.
type target struct {
	backend string
	limit   int64
	desc    string
}

// memoryTarget resolves the device in use (auto: the GPU, else the CPU) and
// its memory: the GPU's, or this host's for the CPU, unless --memory. On a
// machine without a GPU, --device cuda still predicts a CUDA device (80 GiB
// unless --memory), but cannot measure one.
func memoryTarget(dev, memory string, measure bool) (target, error) {
	var tg target
	be, how, err := device.Open(dev, 1)
	switch {
	case err == nil:
		tg.backend = device.CUDA
		if be.Name() == device.CPU {
			tg.backend = device.CPU
		}
		var what string
		tg.limit, what = train.DeviceMemory(be)
		be.Close()
		tg.desc = fmt.Sprintf("%s, %s GiB of %s", how, gib(tg.limit), what)
		if what == "" {
			tg.desc = how
		}
	case dev == device.CUDA && !measure:
		tg.backend, tg.desc = device.CUDA, fmt.Sprintf("a CUDA device (none here: %s)", device.Brief(err))
	default:
		return tg, usagef("--device %s: %w", dev, err)
	}
	if memory != "" {
		b, err := parseBytes(memory)
		if err != nil {
			return tg, usagef("--memory: %v", err)
		}
		tg.limit = b
		tg.desc += fmt.Sprintf(", fitting --memory %s GiB", gib(b))
	}
	if tg.limit <= 0 {
		tg.limit = 80 << 30
		tg.desc += ", 80 GiB assumed (--memory)"
	}
	return tg, nil
}

// parseBytes reads sizes such as 80GiB, 24GB, 512MiB or a plain byte count.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"G", 1 << 30}, {"M", 1 << 20}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || v <= 0 {
				return 0, fmt.Errorf("%q is not a size", s)
			}
			return int64(v * u.mult), nil
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 80GiB)", s)
	}
	return v, nil
}

func gib(b int64) string { return fmt.Sprintf("%.2f", float64(b)/(1<<30)) }
