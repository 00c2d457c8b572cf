package config

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compact-llm/compact/configs"
	"github.com/compact-llm/compact/internal/data"
	"github.com/spf13/viper"
)

// Load reads file (may be empty for defaults only), then COMPACT_* variables,
// then overrides ("key.path=value"), and validates the result. Every error
// is a UsageError naming the file or key.
func Load(file string, overrides []string) (Config, error) {
	cfg, origin, err := loadSources(Default(), file, overrides)
	if err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, &UsageError{blame(err, origin)}
	}
	return cfg, nil
}

// loadOver is Load without validation, starting from start instead of
// Default(). It also returns the keys the file, the environment or the
// overrides set explicitly (so fine-tuning can tell a user's model.* key
// from a default). Layers are applied one at a time so that an error blames
// its own source: the file and key, the COMPACT_* variable, or the --set.
func loadOver(start Config, file string, overrides []string) (Config, []string, error) {
	cfg, origin, err := loadSources(start, file, overrides)
	var explicit []string
	for _, k := range Keys() {
		if origin[k] != "" {
			explicit = append(explicit, k)
		}
	}
	return cfg, explicit, err
}

// loadSources is loadOver returning, for every key set explicitly, where
// it was set ("config F", "environment COMPACT_X", "--set k=v").
func loadSources(start Config, file string, overrides []string) (Config, map[string]string, error) {
	origin := map[string]string{}
	cfg, inFile, err := loadFile(start, file)
	if err != nil {
		return Config{}, nil, err
	}
	for _, k := range inFile {
		origin[k] = "config " + file
	}
	env, err := configEnv()
	if err != nil {
		return Config{}, nil, err
	}
	for _, e := range env {
		if cfg, err = setKey(cfg, e.key, e.val); err != nil {
			return Config{}, nil, Usagef("environment %s=%s: %w", e.name, e.val, err)
		}
		origin[e.key] = "environment " + e.name + "=" + e.val
	}
	known := Keys()
	for _, o := range overrides {
		key, val, ok := strings.Cut(o, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if !ok || key == "" {
			return Config{}, nil, Usagef("--set %q: want key.path=value", o)
		}
		if !slices.Contains(known, key) {
			return Config{}, nil, Usagef("--set %s: unknown key%s", key, suggestKey(key, known))
		}
		if cfg, err = setKey(cfg, key, val); err != nil {
			return Config{}, nil, Usagef("--set %s=%s: %w", key, val, err)
		}
		origin[key] = "--set " + key + "=" + val
	}
	if file != "" && !strings.HasPrefix(file, configs.Builtin) {
		cfg.resolvePaths(filepath.Dir(file))
	}
	return cfg, origin, nil
}

// blame prefixes a validation error that starts with a key's name with
// where that key was set, so the user knows which line to fix.
func blame(err error, origin map[string]string) error {
	msg, best := err.Error(), ""
	for k := range origin {
		if strings.HasPrefix(msg, k) && len(k) > len(best) {
			best = k
		}
	}
	if best == "" {
		return err
	}
	return fmt.Errorf("%s: %w", origin[best], err)
}

// loadFile applies the YAML file (if any) over start and returns the keys it
// set.
func loadFile(start Config, file string) (Config, []string, error) {
	if file == "" {
		return start, nil, nil
	}
	v := viper.New()
	for k, val := range start.Values() {
		v.SetDefault(k, val)
	}
	v.SetConfigType("yaml")
	var body []byte
	if name, ok := strings.CutPrefix(file, configs.Builtin); ok {
		var err error
		if body, err = configs.FS.ReadFile(name); err != nil {
			return Config{}, nil, Usagef("config %s: no such built-in config (there are %s%s; compact configs lists them)", file, configs.Builtin, strings.Join(configs.Names(), ", "+configs.Builtin))
		}
	} else {
		var err error
		if body, err = data.ReadRegular(file); err != nil { // no FIFO, no byte order mark
			return Config{}, nil, Usagef("config %s: %w", file, err)
		}
	}
	known := Keys()
	if err := yamlKeys(body, file, known); err != nil {
		return Config{}, nil, err
	}
	if err := v.ReadConfig(bytes.NewReader(body)); err != nil {
		return Config{}, nil, Usagef("config %s: %w", file, err)
	}
	sectionNames, _ := sections()
	for _, k := range v.AllKeys() {
		if !slices.Contains(known, k) && !slices.Contains(sectionNames, k) { // an empty section: `train:` with every key commented out
			return Config{}, nil, Usagef("config %s: unknown key %s%s", file, k, suggestKey(k, known))
		}
	}
	var explicit []string
	for _, k := range known {
		if v.InConfig(k) {
			explicit = append(explicit, k)
		}
	}
	if err := checkIntegers(v, keyKinds(start), file, nil); err != nil {
		return Config{}, nil, err
	}
	var cfg Config
	if err := v.UnmarshalExact(&cfg); err != nil {
		return Config{}, nil, Usagef("config %s: %w", file, decodeError(err))
	}
	if err := checkFloats(cfg, file, nil); err != nil {
		return Config{}, nil, err
	}
	return cfg, explicit, nil
}

// setKey returns cfg with key set from its string form, decoded exactly as
// a YAML scalar would be (lists are comma-separated).
func setKey(cfg Config, key, val string) (Config, error) {
	v := viper.New()
	for k, cur := range cfg.Values() {
		v.SetDefault(k, cur)
	}
	whole, err := wholeNumber(val, keyKinds(cfg)[key])
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", key, err)
	}
	v.Set(key, whole)
	var out Config
	if err := v.UnmarshalExact(&out); err != nil {
		return Config{}, decodeError(err)
	}
	return out, nil
}

// decodeError drops mapstructure's multi-line preamble, keeping the lines
// that name the key.
func decodeError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "decoding failed due to the following error(s):")
	msg = strings.TrimSpace(msg)
	return errors.New(strings.ReplaceAll(msg, "\n", "; "))
}

func source(file string) string {
	if file == "" {
		return "configuration"
	}
	return "config " + file
}

// resolvePaths makes relative data paths relative to the config file's
// directory when they do not exist relative to the working directory.
func (c *Config) resolvePaths(dir string) {
	fix := func(globs []string) {
		for i, g := range globs {
			if filepath.IsAbs(g) {
				continue
			}
			if m, _ := filepath.Glob(g); len(m) > 0 {
				continue
			}
			if m, _ := filepath.Glob(filepath.Join(dir, g)); len(m) > 0 {
				globs[i] = filepath.Join(dir, g)
			}
		}
	}
	fix(c.Data.Train)
	fix(c.Data.Val)
}
