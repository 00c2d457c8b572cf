package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/compact-llm/compact/configs"
	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
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
func (f configFlags) load(extra ...string) (config.Config, error) {
	return config.Load(f.file, f.overrides(extra...))
}

// loadFinetune resolves the config of a fine-tuning run from base.
func (f configFlags) loadFinetune(base config.Base, extra ...string) (config.Config, error) {
	return config.LoadFinetune(base, f.file, f.overrides(extra...))
}

// loadCheckpoint resolves --checkpoint (named flag in messages) and builds
// its run config: the one saved in the checkpoint (defaults for an HF
// directory), then the flags; the model section from its config.json.
func (f configFlags) loadCheckpoint(dir string, extra ...string) (config.Base, config.Config, error) {
	if dir == "" {
		return config.Base{}, config.Config{}, usagef("--checkpoint DIR is required")
	}
	b, err := checkpoint.ResolveBase(dir)
	if err != nil {
		return config.Base{}, config.Config{}, usagef("--checkpoint: %w", err)
	}
	cfg, err := config.LoadForCheckpoint(b, f.file, f.overrides(extra...))
	return b, cfg, err
}

// trainFlags are the flags of the commands that train (pretrain, finetune).
type trainFlags struct {
	out                               string
	steps                             int
	resume                            string // "", resumeNewest or a checkpoint PATH
	overwrite, allowDiff, weightsOnly bool
}

// resumeNewest is --resume's value without a PATH: the newest checkpoint
// in --out.
const resumeNewest = "newest"

func (f *trainFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.out, "out", "", "output directory: metrics.jsonl, memreport.json, checkpoints/")
	c.Flags().IntVar(&f.steps, "steps", 0, "optimizer steps (overrides train.steps)")
	c.Flags().StringVar(&f.resume, "resume", "", "continue from the newest checkpoint in --out, or from the checkpoint directory `PATH` (--resume PATH)")
	c.Flags().Lookup("resume").NoOptDefVal = resumeNewest
	c.Flags().BoolVar(&f.weightsOnly, "weights-only", false, "with --resume: continue from the checkpoint's weights, step and data position with fresh Adam moments (for a checkpoint without optimizer.safetensors)")
	c.Flags().BoolVar(&f.overwrite, "overwrite", false, "move an existing run in --out aside (to DIR.old-TIMESTAMP) and start a new one")
	c.Flags().BoolVar(&f.allowDiff, "allow-config-change", false, "with --resume: continue although optimizer settings (lr, micro_batch, update_gap, ...) changed")
	c.Args = f.args
}

// args takes the PATH of `--resume PATH`: --resume's value is optional, so
// the flag parser leaves a path after it as an argument. The training
// commands take no other argument.
func (f *trainFlags) args(c *cobra.Command, args []string) error {
	if len(args) == 1 && f.resume == resumeNewest {
		f.resume = args[0]
		return nil
	}
	return cobra.NoArgs(c, args)
}

// check refuses missing or meaningless values.
func (f *trainFlags) check(given flagsGiven) error {
	if f.out == "" {
		return usagef("--out DIR is required")
	}
	switch f.resume {
	case "false":
		f.resume = ""
	case "true": // --resume=true, as when the flag was a plain switch
		f.resume = resumeNewest
	}
	if f.weightsOnly && f.resume == "" {
		return usagef("--weights-only goes with --resume: it continues a checkpoint from its weights with fresh Adam moments")
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
	o := train.RunOptions{Out: f.out, Base: base, Resume: f.resume != "", WeightsOnly: f.weightsOnly, Overwrite: f.overwrite,
		AllowConfigChange: f.allowDiff, Log: s.err, Progress: s.tty, ResumeCommand: resumeCommand()}
	if f.resume != resumeNewest {
		o.ResumeFrom = f.resume
	}
	return o
}
