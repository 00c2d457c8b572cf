package main

import (
	"math"

	"github.com/spf13/cobra"
)

// Flag values that parse but make no sense (cobra accepts NaN, Inf and any
// sign) are refused before any work, naming the flag.

// finiteFlags refuses NaN or infinite values of the named float flags.
func finiteFlags(vals map[string]float64) error {
	for name, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return usagef("--%s %g: must be a finite number", name, v)
		}
	}
	return nil
}

// positiveFlags refuses a value <= 0 of each named integer flag the user
// set (an unset flag keeps its meaning of "use the config's value").
func positiveFlags(cmd *cobra.Command, vals map[string]int) error {
	for name, v := range vals {
		if cmd.Flags().Changed(name) && v <= 0 {
			return usagef("--%s %d: must be positive", name, v)
		}
	}
	return nil
}
