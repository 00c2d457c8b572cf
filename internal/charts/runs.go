// Package charts draws the PNG charts of the CLI with gonum/plot: training
// runs' curves (compact plot) and memory reports' stacked bars (compact
// memreport --plot).
package charts

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/train"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// RunLabels names each run by the last components of its directory, as
// many as it takes to tell runs apart (a/run and b/run, not run twice).
func RunLabels(dirs []string) []string {
	parts := make([][]string, len(dirs))
	depth := make([]int, len(dirs))
	labels := make([]string, len(dirs))
	for i, d := range dirs {
		parts[i] = strings.Split(filepath.ToSlash(filepath.Clean(d)), "/")
		depth[i] = 1
	}
	for {
		count := map[string]int{}
		for i := range dirs {
			labels[i] = strings.Join(parts[i][max(0, len(parts[i])-depth[i]):], "/")
			count[labels[i]]++
		}
		grew := false
		for i := range dirs {
			if count[labels[i]] > 1 && depth[i] < len(parts[i]) {
				depth[i]++
				grew = true
			}
		}
		if !grew {
			return labels
		}
	}
}

// distinctTicks are gonum's default ticks labelled with as many digits as
// it takes to tell them apart (it printed "2.8, 2.8, 2.7" on a loss axis).
type distinctTicks struct{}

func (distinctTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for digits := 0; !distinctLabels(ts) && digits <= 15; digits++ {
		for i := range ts {
			if !ts[i].IsMinor() {
				ts[i].Label = tickLabel(ts[i].Value, digits)
			}
		}
	}
	return ts
}

// TickLabels are the labels of the major ticks of an axis from lo to hi.
func TickLabels(lo, hi float64) []string {
	var out []string
	for _, t := range (distinctTicks{}).Ticks(lo, hi) {
		if !t.IsMinor() {
			out = append(out, t.Label)
		}
	}
	return out
}

// distinctLabels reports whether no two major ticks share a label.
func distinctLabels(ts []plot.Tick) bool {
	seen := map[string]bool{}
	for _, t := range ts {
		if t.IsMinor() {
			continue
		}
		if seen[t.Label] {
			return false
		}
		seen[t.Label] = true
	}
	return true
}

// tickLabel is v with digits decimals, or digits+1 significant digits in
// exponent form far from 1.
func tickLabel(v float64, digits int) string {
	if a := math.Abs(v); a != 0 && (a < 1e-3 || a >= 1e7) {
		return strconv.FormatFloat(v, 'g', digits+1, 64)
	}
	return strconv.FormatFloat(v, 'f', digits, 64)
}

// runColors tells runs apart in PlotRuns.
var runColors = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0xd6, 0x27, 0x28, 0xff}, color.RGBA{0x2c, 0xa0, 0x2c, 0xff},
	color.RGBA{0xff, 0x7f, 0x0e, 0xff}, color.RGBA{0x94, 0x67, 0xbd, 0xff}, color.RGBA{0x8c, 0x56, 0x4b, 0xff},
}

// PlotRuns draws training loss, validation loss and learning rate against
// tokens for each run directory (its metrics.jsonl), one panel each, and
// saves a PNG. Labels are the directories' names.
func PlotRuns(dirs []string, path string) error {
	panels := []struct {
		title, y string
		val      func(m train.Metric) (float64, bool)
	}{
		{"training loss", "loss (nats)", func(m train.Metric) (float64, bool) { return m.Loss, true }},
		{"validation loss", "val_loss (nats)", func(m train.Metric) (float64, bool) {
			if m.ValLoss == nil {
				return 0, false
			}
			return *m.ValLoss, true
		}},
		{"learning rate", "lr", func(m train.Metric) (float64, bool) { return m.LR, true }},
	}
	runs := make([][]train.Metric, len(dirs))
	for i, d := range dirs {
		ms, err := train.ReadMetrics(filepath.Join(d, "metrics.jsonl"))
		if err != nil {
			return config.Usagef("run %s: %w", d, err)
		}
		if len(ms) == 0 {
			return config.Usagef("run %s: metrics.jsonl has no steps yet", d)
		}
		runs[i] = ms
	}
	labels := RunLabels(dirs)
	var maxTokens float64
	for _, ms := range runs {
		maxTokens = max(maxTokens, float64(ms[len(ms)-1].Tokens))
	}
	plots := make([][]*plot.Plot, len(panels))
	for pi, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		p.X.Label.Text = "tokens"
		p.Y.Label.Text = pn.y
		p.Legend.Top = true
		p.Y.Tick.Marker = distinctTicks{}
		p.X.Tick.Marker = distinctTicks{}
		p.Add(plotter.NewGrid())
		spanLo, spanHi := math.Inf(1), math.Inf(-1)
		for ri, ms := range runs {
			var xys plotter.XYs
			for _, m := range ms {
				if v, ok := pn.val(m); ok {
					xys = append(xys, plotter.XY{X: float64(m.Tokens), Y: v})
				}
			}
			if len(xys) == 0 {
				continue
			}
			// A span that overflows (values near ±MaxFloat64, only in a
			// corrupt file) sends the axis tick search into an endless loop.
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, xy := range xys {
				lo, hi = math.Min(lo, xy.Y), math.Max(hi, xy.Y)
			}
			if math.IsInf(hi-lo, 0) || math.IsNaN(hi-lo) {
				return config.Usagef("run %s: %s spans %g to %g, which cannot be plotted", dirs[ri], pn.y, lo, hi)
			}
			spanLo, spanHi = math.Min(spanLo, lo), math.Max(spanHi, hi)
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return fmt.Errorf("run %s: %w", dirs[ri], err)
			}
			c := runColors[ri%len(runColors)]
			line.Color, points.Color = c, c
			points.Radius = vg.Points(1.5)
			if len(xys) > 60 {
				points.Radius = 0 // a long run reads better as a line
			}
			p.Add(line, points)
			p.Legend.Add(labels[ri], line)
		}
		// A flat curve far from zero (lr 1e30 throughout) is a range gonum
		// cannot widen by ±1: it panicked with "illegal range".
		if spanLo <= spanHi && spanHi-spanLo <= 1e-9*math.Max(math.Abs(spanLo), math.Abs(spanHi)) {
			pad := math.Max(math.Abs(spanLo)*0.05, 1e-12)
			p.Y.Min, p.Y.Max = spanLo-pad, spanHi+pad
		}
		p.X.Min, p.X.Max = 0, maxTokens // the same x axis in every panel
		plots[pi] = []*plot.Plot{p}
	}
	img, err := newCanvas(8*vg.Inch, 9*vg.Inch, path)
	if err != nil {
		return config.Usagef("%w", err)
	}
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadY: vg.Points(8), PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	if err := save(img, path); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}
