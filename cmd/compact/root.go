package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// usageError marks a command-line mistake (a flag, a positional argument, a
// command name) so main exits with status 2. Every such error is made where
// it is found: by a run function's checks (usagef), by cobra's flag parsing
// (SetFlagErrorFunc) and by each command's Args, never recognised afterwards
// by cobra's wording.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// usagef builds a usageError.
func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// streams are where a command writes: its result to out, logs and progress
// to err; tty says err is a terminal (draw progress bars).
type streams struct {
	out, err io.Writer
	tty      bool
}

// stdStreams are the process's stdout and stderr.
func stdStreams() streams {
	return streams{out: os.Stdout, err: os.Stderr, tty: term.IsTerminal(int(os.Stderr.Fd()))}
}

// usageArgs wraps a positional-argument check so its error is a usageError.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// unknownCommand is the root's argument check: any argument left once cobra
// has looked for a subcommand names none.
func unknownCommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return errors.New(msg)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "compact",
		Short: "Pretrain and fine-tune LLaMA models with CompAct compressed activations",
		Long: `compact trains LLaMA-family models with far less device memory than the
usual recipes: each compressed linear layer saves a random projection of its
input instead of the input, keeps its weight gradient and Adam state in that
small space, and decompresses only the update (CompAct, NAACL 2025).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionString(),
		// A Run and Args on the root make cobra report an unknown command
		// through Args (wrapped below) instead of its own untyped error.
		Args: unknownCommand,
		RunE: func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	root.SuggestionsMinimumDistance = 2 // cobra's own default is set only on a path we do not take
	root.SetVersionTemplate("compact {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// "compact pretrian --out x": cobra parses x's flags on the root,
		// which has no --out; the mistake is the command's name.
		if !c.HasParent() {
			if args := c.Flags().Args(); len(args) > 0 {
				return usageError{unknownCommand(c, args)}
			}
		}
		return usageError{err}
	})
	root.AddCommand(newPretrainCmd(), newFinetuneCmd(), newEvalCmd(), newSampleCmd(), newTokenizeCmd(), newBenchCmd(), newMemreportCmd(), newConfigCmd(), newConfigsCmd(), newPlotCmd())
	for _, c := range append(root.Commands(), root) {
		if c.Args != nil {
			c.Args = usageArgs(c.Args)
		}
	}
	return root
}
