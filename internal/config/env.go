package config

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
)

// NonConfigEnv lists the COMPACT_* variables that are not configuration
// keys: the cache directory and the reference-step test's switches. Names
// starting with COMPACT_FAULT_ or COMPACT_TEST_ are test hooks and also
// allowed. Every other COMPACT_* variable must name a key, so that a
// misspelt one is an error instead of a setting silently ignored.
var NonConfigEnv = []string{"COMPACT_CACHE", "COMPACT_REFERENCE_OUT", "COMPACT_REFERENCE_DEVICE"}

func nonConfigEnv(name string) bool {
	return slices.Contains(NonConfigEnv, name) || strings.HasPrefix(name, "COMPACT_FAULT_") || strings.HasPrefix(name, "COMPACT_TEST_")
}

// EnvName is the environment variable of a key: train.lr -> COMPACT_TRAIN_LR.
func EnvName(key string) string {
	return "COMPACT_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

type envSetting struct{ name, key, val string }

// configEnv returns the COMPACT_* variables that set keys, sorted by name,
// and refuses any other COMPACT_* variable not in NonConfigEnv.
func configEnv() ([]envSetting, error) {
	byName := map[string]string{}
	var names []string
	for _, k := range Keys() {
		byName[EnvName(k)] = k
		names = append(names, EnvName(k))
	}
	var out []envSetting
	for _, kv := range os.Environ() {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "COMPACT_") || nonConfigEnv(name) {
			continue
		}
		key, ok := byName[name]
		if !ok {
			return nil, Usagef("environment variable %s names no configuration key%s; unset it (COMPACT_* variables are keys, plus %s)",
				name, suggestKey(name, names), strings.Join(NonConfigEnv[:1], ""))
		}
		out = append(out, envSetting{name, key, val})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// suggestKey returns " (did you mean K?)" for the known key nearest to bad,
// by edit distance, or by the same last part in another section
// (model.lr -> train.lr); else a pointer to the keys of bad's section.
func suggestKey(bad string, known []string) string {
	best, bestD := "", 1<<30
	for _, k := range known {
		if d := editDistance(bad, k); d < bestD {
			best, bestD = k, d
		}
	}
	// Allow about one typo per four characters of the name.
	if best != "" && bestD <= max(2, len(bad)/4) {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	// The same section with one name a prefix of the other (train.lrate).
	if section, leaf, ok := strings.Cut(bad, "."); ok && len(leaf) >= 2 {
		for _, k := range known {
			ks, kl, _ := strings.Cut(k, ".")
			if ks == section && len(kl) >= 2 && (strings.HasPrefix(leaf, kl) || strings.HasPrefix(kl, leaf)) {
				return fmt.Sprintf(" (did you mean %s?)", k)
			}
		}
	}
	sep := "."
	if strings.HasPrefix(bad, "COMPACT_") {
		sep = "_"
	}
	if i := strings.LastIndex(bad, sep); i >= 0 {
		leaf := strings.ToLower(bad[i+1:])
		for _, k := range known {
			if strings.HasSuffix(strings.ToLower(k), strings.ToLower(sep)+leaf) {
				return fmt.Sprintf(" (did you mean %s?)", k)
			}
		}
	}
	if section, _, ok := strings.Cut(bad, "."); ok {
		var in []string
		for _, k := range known {
			if strings.HasPrefix(k, section+".") {
				in = append(in, k)
			}
		}
		if len(in) > 0 {
			return fmt.Sprintf(" (keys of %s: %s)", section, strings.Join(in, ", "))
		}
	}
	return " (sections: model, train, compact, data, finetune; README lists every key)"
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
