package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// The run config is written under its YAML key names everywhere it is
// saved (trainer_state.json, `compact config`), so that a saved config can
// be reused as a --config file as it is.

// sections groups Keys() by section in declaration order.
func sections() (names []string, keys map[string][]string) {
	keys = map[string][]string{}
	for _, k := range Keys() {
		s, leaf, _ := strings.Cut(k, ".")
		if _, ok := keys[s]; !ok {
			names = append(names, s)
		}
		keys[s] = append(keys[s], leaf)
	}
	return names, keys
}

// YAML renders c as a config file: every key, in declaration order.
func (c Config) YAML() ([]byte, error) {
	flat := c.Values()
	names, keys := sections()
	root := &yaml.Node{Kind: yaml.MappingNode}
	for _, s := range names {
		sec := &yaml.Node{Kind: yaml.MappingNode}
		for _, leaf := range keys[s] {
			val := &yaml.Node{}
			if err := val.Encode(flat[s+"."+leaf]); err != nil {
				return nil, fmt.Errorf("config %s.%s: %w", s, leaf, err)
			}
			if val.Kind == yaml.SequenceNode {
				val.Style = yaml.FlowStyle
			}
			sec.Content = append(sec.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: leaf}, val)
		}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: s}, sec)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	enc.Close()
	return buf.Bytes(), nil
}

// MarshalJSON writes c as {"model": {"vocab_size": ...}, "train": {...}}:
// the YAML key names.
func (c Config) MarshalJSON() ([]byte, error) {
	out := map[string]map[string]any{}
	for k, v := range c.Values() {
		s, leaf, _ := strings.Cut(k, ".")
		if out[s] == nil {
			out[s] = map[string]any{}
		}
		out[s][leaf] = v
	}
	return json.Marshal(out)
}

// legacyConfig is the form checkpoints written before the YAML key names
// used (Go field names; model keys as in config.json).
type legacyConfig Config

// UnmarshalJSON reads the YAML-key form, starting from Default() for keys
// it lacks, or the older Go-field form.
func (c *Config) UnmarshalJSON(raw []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return err
	}
	if _, old := top["Model"]; old {
		return json.Unmarshal(raw, (*legacyConfig)(c))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep uint64 seeds exact
	var nested map[string]map[string]any
	if err := dec.Decode(&nested); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	v := viper.New()
	for k, val := range Default().Values() {
		v.SetDefault(k, val)
	}
	known := Keys()
	for s, m := range nested {
		for leaf, val := range m {
			k := s + "." + leaf
			if !containsKey(known, k) {
				return fmt.Errorf("config: unknown key %s%s", k, suggestKey(k, known))
			}
			if n, ok := val.(json.Number); ok {
				val = n.String() // decoded by the field's own type
			}
			v.Set(k, val)
		}
	}
	var out Config
	if err := v.UnmarshalExact(&out); err != nil {
		return fmt.Errorf("config: %w", decodeError(err))
	}
	*c = out
	return nil
}

func containsKey(known []string, k string) bool {
	for _, x := range known {
		if x == k {
			return true
		}
	}
	return false
}
