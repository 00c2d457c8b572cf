package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/compact-llm/compact/configs"
	"github.com/compact-llm/compact/internal/config"
	"github.com/spf13/cobra"
)

// newConfigsCmd lists the built-in configs and copies one out to edit, as
// torchtune's `tune ls` and `tune cp` do. Every command takes a built-in
// config as --config builtin:NAME.yaml.
func newConfigsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "configs [ls | cp NAME [DEST]]",
		Short: "List the built-in configs (--config builtin:NAME.yaml) or copy one out to edit",
		Long: `configs lists the configs built into the binary, each usable as
--config builtin:NAME.yaml wherever the binary is (commands without --config
use builtin:tiny.yaml). "configs cp NAME [DEST]" writes one to DEST (default
./NAME.yaml) to edit; it never overwrites a file.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runConfigsList(c.Context(), stdStreams()) },
	}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the built-in configs",
		Args:  cobra.NoArgs,
		RunE:  func(c *cobra.Command, _ []string) error { return runConfigsList(c.Context(), stdStreams()) },
	}
	cp := &cobra.Command{
		Use:   "cp NAME [DEST]",
		Short: "Copy a built-in config to DEST (default ./NAME.yaml) to edit",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			dest := ""
			if len(args) == 2 {
				dest = args[1]
			}
			return runConfigsCopy(c.Context(), args[0], dest, stdStreams())
		},
	}
	c.AddCommand(ls, cp)
	return c
}

// builtinName resolves tiny, tiny.yaml, builtin:tiny.yaml or
// configs/tiny.yaml to the embedded file's name.
func builtinName(name string) (string, error) {
	n := strings.TrimPrefix(filepath.Base(strings.TrimPrefix(name, configs.Builtin)), configs.Builtin)
	if !strings.HasSuffix(n, ".yaml") {
		n += ".yaml"
	}
	for _, have := range configs.Names() {
		if have == n {
			return n, nil
		}
	}
	return "", usagef("no built-in config %q (there are %s)", name, strings.Join(configs.Names(), ", "))
}

func runConfigsList(_ context.Context, s streams) error {
	w := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "CONFIG\tSIZE\tDESCRIPTION")
	for _, name := range configs.Names() {
		body, _ := configs.FS.ReadFile(name)
		size := "model from --base"
		if cfg, err := config.Load(configs.Builtin+name, nil); err == nil && !strings.HasPrefix(name, "finetune") {
			size = fmt.Sprintf("%s params", humanCount(cfg.Model.NumParams()))
		}
		fmt.Fprintf(w, "%s%s\t%s\t%s\n", configs.Builtin, name, size, describe(body))
	}
	w.Flush()
	fmt.Fprintln(s.out, "\nuse one as --config builtin:NAME.yaml, or copy it out to edit: compact configs cp NAME [DEST]")
	return nil
}

// describe is the first sentence of a config's leading comment.
func describe(body []byte) string {
	var text []string
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "#")
		if !ok {
			break
		}
		text = append(text, strings.TrimSpace(line))
	}
	d := strings.Join(text, " ")
	if i := strings.Index(d, ". "); i >= 0 {
		d = d[:i+1]
	}
	if len(d) > 110 {
		d = d[:107] + "..."
	}
	return d
}

// humanCount formats a count as 873.6K, 1.2M, 3.4B.
func humanCount(n int64) string { return scaled(float64(n), "K", "M", "B") }

// scaled is v in thousands, millions or billions, the largest that keeps
// it at 1 or more, with the suffix of each.
func scaled(v float64, k, m, g string) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.1f%s", v/1e9, g)
	case v >= 1e6:
		return fmt.Sprintf("%.1f%s", v/1e6, m)
	}
	return fmt.Sprintf("%.1f%s", v/1e3, k)
}

func runConfigsCopy(_ context.Context, name, dest string, s streams) error {
	n, err := builtinName(name)
	if err != nil {
		return err
	}
	if dest == "" {
		dest = n
	}
	if st, err := os.Stat(dest); err == nil && st.IsDir() {
		dest = filepath.Join(dest, n)
	}
	body, _ := configs.FS.ReadFile(n)
	// O_EXCL: never overwrite a config someone may have edited.
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if os.IsExist(err) {
		return usagef("%s exists: configs cp never overwrites a file; remove it or name another DEST", dest)
	}
	if err != nil {
		return usagef("configs cp: %w", err)
	}
	if _, err := f.Write(body); err != nil {
		f.Close()
		return fmt.Errorf("configs cp: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("configs cp: %w", err)
	}
	fmt.Fprintf(s.err, "wrote %s (from %s%s); train with: compact pretrain --config %s --out DIR\n", dest, configs.Builtin, n, dest)
	return nil
}
