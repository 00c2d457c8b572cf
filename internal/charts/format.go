package charts

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	_ "gonum.org/v1/plot/vg/vgimg" // png, jpg, tif
	_ "gonum.org/v1/plot/vg/vgpdf"
	_ "gonum.org/v1/plot/vg/vgsvg"
)

// formats are the file types a chart is written as, by extension.
var formats = []string{"png", "svg", "pdf", "jpg", "jpeg", "tif", "tiff"}

// format is path's image format, from its extension.
func format(path string) (string, error) {
	ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(path), "."))
	for _, f := range formats {
		if ext == f {
			return ext, nil
		}
	}
	return "", fmt.Errorf("%s: the extension names the image format: .%s", path, strings.Join(formats, ", ."))
}

// CheckFormat refuses a chart file name whose extension is no image format
// (a chart was once written as PNG bytes into x.jpg).
func CheckFormat(path string) error {
	_, err := format(path)
	return err
}

// newCanvas is a canvas of w x h for path's format.
func newCanvas(w, h vg.Length, path string) (vg.CanvasWriterTo, error) {
	f, err := format(path)
	if err != nil {
		return nil, err
	}
	return draw.NewFormattedCanvas(w, h, f)
}

// save writes c to path.
func save(c vg.CanvasWriterTo, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
