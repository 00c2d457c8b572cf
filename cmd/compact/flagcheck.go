package main

import (
	"math"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Flag values that parse but make no sense (cobra accepts NaN, Inf and any
// sign) are refused before any work, naming the flag.

// flagsGiven names the flags the user gave, so a run function can tell an
// explicit "--steps 0" from the flag's absence (which keeps its meaning of
// "use the config's value").
type flagsGiven map[string]bool

// givenFlags lists the flags of c set on the command line.
func givenFlags(c *cobra.Command) flagsGiven {
	g := flagsGiven{}
	c.Flags().Visit(func(f *pflag.Flag) { g[f.Name] = true })
	return g
}

// positive refuses a value <= 0 of each named integer flag the user gave.
func (g flagsGiven) positive(vals map[string]int) error {
	for name, v := range vals {
		if g[name] && v <= 0 {
			return usagef("--%s %d: must be positive", name, v)
		}
	}
	return nil
}

// finiteFlags refuses NaN or infinite values of the named float flags.
func finiteFlags(vals map[string]float64) error {
	for name, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return usagef("--%s %g: must be a finite number", name, v)
		}
	}
	return nil
}
