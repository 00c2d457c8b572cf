package charts

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/memreport"
	"github.com/compact-llm/compact/internal/train"
)

// writeRun writes a run directory whose metrics.jsonl has steps lines
// (validation losses every 4 steps when val).
func writeRun(t *testing.T, dir string, steps int, val bool, lr float64) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for s := 1; s <= steps; s++ {
		m := train.Metric{Step: s, Loss: 5 - 0.1*float64(s), LR: lr * float64(s) / float64(steps), Tokens: int64(1000 * s)}
		if val && s%4 == 0 {
			v := 5.2 - 0.1*float64(s)
			m.ValLoss = &v
		}
		line, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s\n", line)
	}
	if err := os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	return img
}

// count is the number of pixels of img within rows [y0, y1) that are c
// (give or take antialiasing's last bits).
func count(img image.Image, c color.Color, y0, y1 int) int { return countNear(img, c, 8, y0, y1) }

// countNear is count with each channel within tol of c's.
func countNear(img image.Image, c color.Color, tol int, y0, y1 int) int {
	want := color.RGBAModel.Convert(c).(color.RGBA)
	near := func(a, b uint8) bool { return int(a) >= int(b)-tol && int(a) <= int(b)+tol }
	n := 0
	b := img.Bounds()
	for y := max(y0, b.Min.Y); y < min(y1, b.Max.Y); y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			got := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			if near(got.R, want.R) && near(got.G, want.G) && near(got.B, want.B) {
				n++
			}
		}
	}
	return n
}

// The run chart is 8 x 9 inches at 96 dpi, three panels stacked (training
// loss, validation loss, learning rate); each run is drawn in its own
// colour in every panel where it has values, and no other run's colour
// appears.
func TestPlotRuns(t *testing.T) {
	dir := t.TempDir()
	a := writeRun(t, filepath.Join(dir, "alpha"), 40, true, 1e-3)
	b := writeRun(t, filepath.Join(dir, "beta"), 30, false, 3e-3) // no validation losses
	out := filepath.Join(dir, "runs.png")
	if err := PlotRuns([]string{a, b}, out); err != nil {
		t.Fatal(err)
	}
	img := readPNG(t, out)
	if got := img.Bounds().Size(); got != (image.Point{768, 864}) {
		t.Fatalf("chart is %v pixels, want 768x864 (8 x 9 in at 96 dpi)", got)
	}
	third := 864 / 3
	for panel, name := range []string{"training loss", "validation loss", "learning rate"} {
		y0, y1 := panel*third, (panel+1)*third
		if n := count(img, runColors[0], y0, y1); n < 20 {
			t.Errorf("%s: run alpha's colour covers %d pixels", name, n)
		}
		n := count(img, runColors[1], y0, y1)
		if hasVal := panel != 1; hasVal && n < 20 {
			t.Errorf("%s: run beta's colour covers %d pixels", name, n)
		}
	}
	if n := count(img, runColors[2], 0, 864); n > 0 {
		t.Errorf("a third run's colour covers %d pixels of a two-run chart", n)
	}
}

// A chart that cannot be drawn is bad input naming the run.
func TestPlotRunsRefusesBadRuns(t *testing.T) {
	dir := t.TempDir()
	good := writeRun(t, filepath.Join(dir, "good"), 5, true, 1e-3)
	empty := filepath.Join(dir, "empty")
	os.MkdirAll(empty, 0o755)
	os.WriteFile(filepath.Join(empty, "metrics.jsonl"), nil, 0o644)
	huge := filepath.Join(dir, "huge") // a corrupt file: values whose span overflows
	os.MkdirAll(huge, 0o755)
	os.WriteFile(filepath.Join(huge, "metrics.jsonl"), []byte(`{"step":1,"loss":5,"lr":1.7e308,"tokens":1000}
{"step":2,"loss":4,"lr":-1.7e308,"tokens":2000}
`), 0o644)
	for _, c := range []struct {
		run, want string
	}{
		{filepath.Join(dir, "missing"), "missing"},
		{empty, "no steps yet"},
		{huge, "cannot be plotted"},
	} {
		out := filepath.Join(dir, "x.png")
		err := PlotRuns([]string{good, c.run}, out)
		if !config.IsUsage(err) || !strings.Contains(err.Error(), c.run) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a usage error naming it (%q)", c.run, err, c.want)
		}
	}
}

// The memory chart is one horizontal stacked bar per variant, 22 points
// each plus 110 for the title and axis (at least 240, the legend's height),
// 9 inches wide, so names of any length read on the left: the categories with
// bytes appear in their colours, those without do not, and the limit line
// is drawn only when it is in sight of the bars.
func TestPlotMemory(t *testing.T) {
	gib := int64(1 << 30)
	row := func(name string, w, g, a int64) memreport.Row {
		return memreport.Row{Variant: memreport.Variant{Name: name}, Predicted: map[string]int64{
			gpu.Weights.String(): w, gpu.Grads.String(): g, gpu.Activations.String(): a, "total": w + g + a}}
	}
	rows := []memreport.Row{row("baseline", 2*gib, 2*gib, 6*gib), row("compact r=0.25", 2*gib, gib, 3*gib), row("lean", gib, gib, gib)}
	dir := t.TempDir()
	limitColor := color.RGBA{R: 150, A: 255}
	for _, c := range []struct {
		limit     int64
		limitLine bool
	}{{12 * gib, true}, {80 * gib, false}} {
		out := filepath.Join(dir, fmt.Sprintf("mem-%d.png", c.limit/gib))
		if err := PlotMemory(rows, "tiny", c.limit, out); err != nil {
			t.Fatal(err)
		}
		img := readPNG(t, out)
		// max(3 x 22 + 110, 240) = 240 points = 320 pixels at 96 dpi; 9 in = 864.
		if got := img.Bounds().Size(); got != (image.Point{864, 320}) {
			t.Fatalf("chart is %v pixels, want 864x320", got)
		}
		for _, cat := range []gpu.Category{gpu.Weights, gpu.Grads, gpu.Activations} {
			if n := count(img, categoryColors[cat], 0, 320); n < 50 {
				t.Errorf("%s: %d pixels of its colour", cat, n)
			}
		}
		for _, cat := range []gpu.Category{gpu.Optimizer, gpu.Projection} {
			if n := count(img, categoryColors[cat], 0, 320); n > 0 {
				t.Errorf("%s holds no bytes but covers %d pixels", cat, n)
			}
		}
		// The dashed 1-point line is antialiased to shades of its red.
		if n := countNear(img, limitColor, 60, 0, 320); (n > 20) != c.limitLine {
			t.Errorf("limit %d GiB: %d pixels of the limit line, want it drawn: %v", c.limit/gib, n, c.limitLine)
		}
	}
}
