package main

import (
	"os"
	"strings"

	"github.com/compact-llm/compact/internal/train"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// flagError marks errors from flag parsing so main exits with status 2.
type flagError struct{ error }

func isFlagError(err error) bool {
	_, ok := err.(flagError)
	return ok || strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag") ||
		strings.HasPrefix(err.Error(), "unknown shorthand flag") || strings.Contains(err.Error(), "flag needs an argument") ||
		strings.HasPrefix(err.Error(), "invalid argument")
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
	}
	root.SetVersionTemplate("compact {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return flagError{err} })
	root.AddCommand(newPretrainCmd(), newFinetuneCmd(), newEvalCmd(), newSampleCmd(), newTokenizeCmd(), newBenchCmd(), newMemreportCmd(), newConfigCmd(), newPlotCmd())
	return root
}

// configFlags are the flags every training command shares.
type configFlags struct {
	file   string
	sets   []string
	device string
}

func (f *configFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.file, "config", "", "YAML config file (see configs/)")
	c.Flags().StringArrayVar(&f.sets, "set", nil, "override a config key, e.g. --set train.lr=3e-4 (repeatable)")
	c.Flags().StringVar(&f.device, "device", "", "auto, cpu or cuda (overrides train.device)")
}

// load reads the config with flag overrides applied last.
func (f *configFlags) load(extra ...string) (train.Config, error) {
	sets := append([]string(nil), f.sets...)
	if f.device != "" {
		sets = append(sets, "train.device="+f.device)
	}
	sets = append(sets, extra...)
	return train.Load(f.file, sets)
}

// interactive reports whether stderr is a terminal (draw progress bars).
func interactive() bool { return term.IsTerminal(int(os.Stderr.Fd())) }

func usagef(format string, a ...any) error { return train.Usagef(format, a...) }
