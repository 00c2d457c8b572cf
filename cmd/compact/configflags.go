package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/compact-llm/compact/configs"
	"github.com/compact-llm/compact/internal/gpu/device"
	"github.com/compact-llm/compact/internal/train"
	"github.com/spf13/cobra"
)

// configFlags are the flags of every command that resolves a config. All of
// them load it the same way: the file, COMPACT_* variables, then --set, then
// --device, then what the command's own flags set (later wins).
type configFlags struct {
	file   string
	sets   []string
	device string
}

func (f *configFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.file, "config", "", "YAML config file (see configs/)")
	c.Flags().StringArrayVar(&f.sets, "set", nil, "override a config key, e.g. --set train.lr=3e-4 (repeatable)")
	c.Flags().StringVar(&f.device, "device", "", strings.Join(device.Names, ", ")+" (overrides train.device)")
}

// defaultToTiny makes a missing --config the built-in tiny config, as every
// command that resolves a config does (the library defaults are a 77M model
// for 10000 steps: far too much for a first try on a CPU), and says so.
func (f *configFlags) defaultToTiny(s streams) {
	if f.file != "" {
		return
	}
	f.file = configs.Builtin + "tiny.yaml"
	fmt.Fprintln(s.err, "no --config: using the built-in configs/tiny.yaml (a tiny model, 200 steps, minutes on a CPU); pass --config configs/llama-60m.yaml etc. for the paper's sizes (compact configs lists them)")
}

// configName is a config file's name for tables: tiny for
// builtin:tiny.yaml or configs/tiny.yaml.
func configName(file string) string {
	return strings.TrimSuffix(filepath.Base(strings.TrimPrefix(file, configs.Builtin)), filepath.Ext(file))
}

// overrides are the --set values with --device and extra appended.
func (f configFlags) overrides(extra ...string) []string {
	sets := append([]string(nil), f.sets...)
	if f.device != "" {
		sets = append(sets, "train.device="+f.device)
	}
	return append(sets, extra...)
}

// load resolves a config from the defaults.
func (f configFlags) load(extra ...string) (train.Config, error) {
	return train.Load(f.file, f.overrides(extra...))
}

// loadFinetune resolves the config of a fine-tuning run from base.
func (f configFlags) loadFinetune(base train.Base, extra ...string) (train.Config, error) {
	return train.LoadFinetune(base, f.file, f.overrides(extra...))
}

// loadCheckpoint resolves --checkpoint (named flag in messages) and builds
// its run config: the one saved in the checkpoint (defaults for an HF
// directory), then the flags; the model section from its config.json.
func (f configFlags) loadCheckpoint(dir string, extra ...string) (train.Base, train.Config, error) {
	if dir == "" {
		return train.Base{}, train.Config{}, usagef("--checkpoint DIR is required")
	}
	b, err := train.ResolveBase(dir)
	if err != nil {
		return train.Base{}, train.Config{}, usagef("--checkpoint: %w", err)
	}
	cfg, err := train.LoadForCheckpoint(b, f.file, f.overrides(extra...))
	return b, cfg, err
}

// trainFlags are the flags of the commands that train (pretrain, finetune).
type trainFlags struct {
	out                          string
	steps                        int
	resume, overwrite, allowDiff bool
}

func (f *trainFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.out, "out", "", "output directory: metrics.jsonl, memreport.json, checkpoints/")
	c.Flags().IntVar(&f.steps, "steps", 0, "optimizer steps (overrides train.steps)")
	c.Flags().BoolVar(&f.resume, "resume", false, "continue from the newest complete checkpoint in --out")
	c.Flags().BoolVar(&f.overwrite, "overwrite", false, "move an existing run in --out aside (to DIR.old-TIMESTAMP) and start a new one")
	c.Flags().BoolVar(&f.allowDiff, "allow-config-change", false, "with --resume: continue although optimizer settings (lr, micro_batch, update_gap, ...) changed")
}

// check refuses missing or meaningless values.
func (f trainFlags) check(given flagsGiven) error {
	if f.out == "" {
		return usagef("--out DIR is required")
	}
	return given.positive(map[string]int{"steps": f.steps})
}

// overrides are the config keys the flags set.
func (f trainFlags) overrides() []string {
	if f.steps > 0 {
		return []string{fmt.Sprintf("train.steps=%d", f.steps)}
	}
	return nil
}

// runOptions are the options of a training run from base ("" to pretrain).
func (f trainFlags) runOptions(base string, s streams) train.RunOptions {
	return train.RunOptions{Out: f.out, Base: base, Resume: f.resume, Overwrite: f.overwrite, AllowConfigChange: f.allowDiff,
		Log: s.err, Progress: s.tty, ResumeCommand: resumeCommand()}
}
