package charts

import (
	"fmt"
	"image/color"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/memreport"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
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

// PlotMemory draws one stacked bar per variant, one colour per category,
// in GiB, with the memory limit as a line, and saves it as PNG.
func PlotMemory(rows []memreport.Row, title string, limit int64, path string) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "GiB"
	p.Legend.Top = true
	w := vg.Points(22)
	var tallest float64
	for _, r := range rows {
		tallest = max(tallest, float64(r.Predicted["total"])/(1<<30))
	}
	var below *plotter.BarChart
	names := make([]string, len(rows))
	for i, r := range rows {
		names[i] = r.Variant.Name
	}
	for c := gpu.Category(0); c < gpu.NumCategories; c++ {
		vals := make(plotter.Values, len(rows))
		any := false
		for i, r := range rows {
			vals[i] = float64(r.Predicted[c.String()]) / (1 << 30)
			any = any || vals[i] > 0
		}
		if !any {
			continue
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		bars.LineStyle.Width = 0
		bars.Color = categoryColors[c]
		if below != nil {
			bars.StackOn(below)
		}
		below = bars
		p.Add(bars)
		p.Legend.Add(c.String(), bars)
	}
	// The limit only helps when it is in sight of the bars; otherwise it
	// squashes them, and the title carries it.
	if limit > 0 && float64(limit)/(1<<30) < 1.5*tallest {
		tallest = max(tallest, float64(limit)/(1<<30))
		line, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: float64(limit) / (1 << 30)}, {X: float64(len(rows)) - 0.5, Y: float64(limit) / (1 << 30)}})
		if err != nil {
			return err
		}
		line.Color = color.RGBA{R: 200, A: 255}
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("limit %.0f GiB", float64(limit)/(1<<30)), line)
	}
	p.Y.Min, p.Y.Max = 0, tallest*1.5 // head room for the legend
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = 0.6
	p.X.Tick.Label.XAlign = -1.0
	p.X.Tick.Label.YAlign = -0.5
	width := vg.Length(len(rows))*vg.Points(40) + vg.Points(140)
	return p.Save(width, 5*vg.Inch, path)
}
