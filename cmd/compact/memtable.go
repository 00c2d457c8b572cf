package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/memreport"
	"github.com/compact-llm/compact/internal/train"
)

// memUnit is the unit a whole table is printed in: the largest that keeps
// the biggest number at 1 or more (tiny models are MiB or KiB, not 0.00 GiB).
type memUnit struct {
	name  string
	bytes float64
}

func unitFor(maxBytes int64) memUnit {
	for _, u := range []memUnit{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if float64(maxBytes) >= u.bytes {
			return u
		}
	}
	return memUnit{"B", 1}
}

func (u memUnit) format(b int64) string {
	if u.bytes == 1 {
		return strconv.FormatInt(b, 10)
	}
	return fmt.Sprintf("%.2f", float64(b)/u.bytes)
}

// activationKinds lists the activation kinds any row has, in the engine's
// order (train.ActivationKinds), so the columns keep their order whatever
// the variants.
func activationKinds(rows []memreport.Row) []string {
	var kinds []string
	for _, k := range train.ActivationKinds {
		for _, r := range rows {
			if r.Kinds[k] > 0 {
				kinds = append(kinds, k)
				break
			}
		}
	}
	return kinds
}

// costNote says why a variant needs more than full rank under the same
// recomputation policy: the categories and activation kinds that grew most.
func costNote(r memreport.Row, rows []memreport.Row, u memUnit) string {
	// The base is full rank with the same recompute and precisions.
	var base *memreport.Row
	for i := range rows {
		if v := rows[i].Variant; !v.Compact && sameTag(v.Name, r.Variant.Name) {
			base = &rows[i]
		}
	}
	if base == nil || !r.Variant.Compact || r.Predicted["total"] <= base.Predicted["total"] {
		return ""
	}
	type delta struct {
		what string
		d    int64
	}
	var ds []delta
	for c := gpu.Category(0); c < gpu.NumCategories; c++ {
		if c.String() == "activations" {
			continue // by kind below
		}
		ds = append(ds, delta{c.String(), r.Predicted[c.String()] - base.Predicted[c.String()]})
	}
	for _, k := range activationKinds([]memreport.Row{r, *base}) {
		ds = append(ds, delta{k, r.Kinds[k] - base.Kinds[k]})
	}
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].d > ds[j].d })
	var parts []string
	for _, d := range ds {
		if d.d <= 0 || len(parts) == 2 {
			break
		}
		parts = append(parts, "+"+u.format(d.d)+" "+d.what)
	}
	return fmt.Sprintf("above %s by %s: %s", base.Variant.Name, u.format(r.Predicted["total"]-base.Predicted["total"]), strings.Join(parts, ", "))
}

// sameTag reports whether two variant names have the same precision and
// fused tags and recompute policy (what follows full or rRANK[-perlayer]).
func sameTag(a, b string) bool { return variantTag(a) == variantTag(b) }

func variantTag(name string) string {
	name = strings.TrimPrefix(name, "full")
	if strings.HasPrefix(name, "r") {
		if i := strings.IndexAny(name, "-+"); i >= 0 {
			name = name[i:]
		}
	}
	return strings.TrimPrefix(name, "-perlayer")
}

// note is a row's last column: its role in the default report, then why it
// needs more than full rank.
func note(r memreport.Row, rows []memreport.Row, u memUnit) string {
	parts := []string{}
	if r.Variant.Role != "" {
		parts = append(parts, r.Variant.Role)
	}
	if c := costNote(r, rows, u); c != "" {
		parts = append(parts, c)
	}
	return strings.Join(parts, "; ")
}

func printMemTable(out io.Writer, rows []memreport.Row, title string, reserve int64, searchCap int, measured bool) {
	var biggest int64
	for _, r := range rows {
		biggest = max(biggest, r.Predicted["total"], r.Measured["total"])
	}
	u := unitFor(biggest)
	fmt.Fprintf(out, "%s (reserve %s GiB); predicted %s by category\n", title, gib(reserve), u.name)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "variant\t"
	for c := gpu.Category(0); c < gpu.NumCategories; c++ {
		head += c.String() + "\t"
	}
	head += "total\tmax batch\t"
	if measured {
		head += "measured\terror %\tdriver\t"
	}
	fmt.Fprintln(w, head+" note")
	capped := false
	for _, r := range rows {
		line := r.Variant.Name + "\t"
		for c := gpu.Category(0); c < gpu.NumCategories; c++ {
			line += u.format(r.Predicted[c.String()]) + "\t"
		}
		mb := strconv.Itoa(r.MaxBatch)
		if r.MaxBatch >= searchCap {
			mb, capped = ">="+mb+"*", true
		}
		line += u.format(r.Predicted["total"]) + "\t" + mb + "\t"
		if measured {
			line += u.format(r.Measured["total"]) + "\t" + fmt.Sprintf("%+.2f", *r.ErrorPercent) + "\t" + u.format(r.DriverUsed) + "\t"
		}
		fmt.Fprintln(w, line+" "+note(r, rows, u))
	}
	w.Flush()
	if capped {
		fmt.Fprintf(out, "* the search stopped at --max-batch %d: a larger micro-batch may fit\n", searchCap)
	}
	for _, r := range rows {
		if strings.Contains(costNote(r, rows, u), "compressed z") {
			fmt.Fprintln(out, "compressed z is an addition: even at full rank the engine keeps no linear layer's input (it recomputes\n"+
				"the norm outputs in backward), so z pays only through smaller gradients and optimizer state, which\n"+
				"at high rank or small models can save less than z costs")
			break
		}
	}
	fmt.Fprintf(out, "\nactivations by kind (%s):\n", u.name)
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	kinds := activationKinds(rows)
	fmt.Fprintln(w, "variant\t"+strings.Join(kinds, "\t")+"\t")
	for _, r := range rows {
		line := r.Variant.Name + "\t"
		for _, k := range kinds {
			line += u.format(r.Kinds[k]) + "\t"
		}
		fmt.Fprintln(w, line)
	}
	w.Flush()
}
