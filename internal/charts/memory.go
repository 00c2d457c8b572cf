package charts

import (
	"fmt"
	"image/color"
	"strings"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/memreport"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// categoryColors gives each memory category its own colour.
var categoryColors = [gpu.NumCategories]color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, // weights
	color.RGBA{0xae, 0xc7, 0xe8, 0xff}, // master
	color.RGBA{0xff, 0x7f, 0x0e, 0xff}, // grads
	color.RGBA{0xd6, 0x27, 0x28, 0xff}, // optimizer
	color.RGBA{0x2c, 0xa0, 0x2c, 0xff}, // activations
	color.RGBA{0x94, 0x67, 0xbd, 0xff}, // projection
	color.RGBA{0x8c, 0x56, 0x4b, 0xff}, // workspace
	color.RGBA{0x7f, 0x7f, 0x7f, 0xff}, // other
}

// PlotMemory draws one horizontal stacked bar per variant (the first row
// on top), one colour per category, the total at the end of each bar and
// the memory limit as a dashed line when it is in sight, and saves it in
// the format of path's extension. Variant names read along the left, where
// any length fits, and the legend sits in the space the bars leave free.
func PlotMemory(rows []memreport.Row, title string, limit int64, path string) error {
	unit, unitName := float64(1<<30), "GiB"
	var tallest float64
	for _, r := range rows {
		tallest = max(tallest, float64(r.Predicted["total"]))
	}
	if tallest < 1<<30 {
		unit, unitName = 1<<20, "MiB"
	}
	tallest /= unit
	p := plot.New()
	p.Title.Text = wrapTitle(title, 90)
	p.Title.TextStyle.Font.Size = vg.Points(11)
	p.X.Label.Text = "predicted peak, " + unitName
	p.Add(plotter.NewGrid())
	n := len(rows)
	names := make([]string, n)
	for i, r := range rows { // gonum counts y upwards: the first row goes on top
		names[n-1-i] = r.Variant.Name
		switch role := r.Variant.Role; {
		case strings.Contains(role, memreport.RoleConfig) && strings.Contains(role, memreport.RoleBestFit):
			names[n-1-i] += " (config, fits)"
		case strings.Contains(role, memreport.RoleConfig):
			names[n-1-i] += " (config)"
		case strings.HasPrefix(role, memreport.RoleBestFit):
			names[n-1-i] += " (best fit)"
		}
	}
	var below *plotter.BarChart
	for c := gpu.Category(0); c < gpu.NumCategories; c++ {
		vals := make(plotter.Values, n)
		any := false
		for i, r := range rows {
			vals[n-1-i] = float64(r.Predicted[c.String()]) / unit
			any = any || vals[n-1-i] > 0
		}
		if !any {
			continue
		}
		bars, err := plotter.NewBarChart(vals, vg.Points(14))
		if err != nil {
			return err
		}
		bars.Horizontal = true
		bars.LineStyle.Width = 0
		bars.Color = categoryColors[c]
		if below != nil {
			bars.StackOn(below)
		}
		below = bars
		p.Add(bars)
		p.Legend.Add(c.String(), bars)
	}
	totals := plotter.XYLabels{}
	for i, r := range rows {
		v := float64(r.Predicted["total"]) / unit
		totals.XYs = append(totals.XYs, plotter.XY{X: v, Y: float64(n - 1 - i)})
		totals.Labels = append(totals.Labels, fmt.Sprintf(" %.3g", v))
	}
	labels, err := plotter.NewLabels(totals)
	if err != nil {
		return err
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i].YAlign = draw.YCenter
		labels.TextStyle[i].Font.Size = vg.Points(8)
	}
	p.Add(labels)
	// The limit only helps when it is in sight of the bars; otherwise it
	// squashes them, and the title carries it.
	if l := float64(limit) / unit; limit > 0 && l < 1.5*tallest {
		tallest = max(tallest, l)
		line, err := plotter.NewLine(plotter.XYs{{X: l, Y: -0.6}, {X: l, Y: float64(n) - 0.4}})
		if err != nil {
			return err
		}
		line.Color = color.RGBA{R: 150, A: 255} // darker than the optimizer's red, whatever the antialiasing
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("limit %.3g %s", l, unitName), line)
	}
	// Room on the right for the totals and the legend.
	p.X.Min, p.X.Max = 0, tallest*1.45
	p.NominalY(names...)
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	height := vg.Length(n)*vg.Points(22) + vg.Points(110)
	height = max(height, vg.Points(20*12)) // the legend's lines
	c, err := newCanvas(9*vg.Inch, height, path)
	if err != nil {
		return err
	}
	p.Draw(draw.Crop(draw.New(c), vg.Points(8), -vg.Points(4), vg.Points(4), -vg.Points(4))) // margins: nothing touches the edge
	return save(c, path)
}

// wrapTitle breaks a long title into lines of at most width characters
// at ", " or spaces, so it is not clipped.
func wrapTitle(s string, width int) string {
	var lines []string
	line := ""
	for _, w := range strings.SplitAfter(s, " ") {
		if len(line)+len(w) > width && line != "" {
			lines = append(lines, strings.TrimSpace(line))
			line = ""
		}
		line += w
	}
	return strings.Join(append(lines, strings.TrimSpace(line)), "\n")
}
