package config

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// yamlKeys checks the keys of a YAML config body in one linear pass over
// its parsed nodes, before viper decodes it: an unknown key (the first in
// the file's order) or a key given twice is an error naming it and its
// line. Viper's decoder finds repeats by comparing each key of a mapping
// with every key before it, which took over a minute for 100k keys; after
// this check a mapping holds at most the few known keys.
func yamlKeys(body []byte, file string, known []string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(body, &doc); err != nil {
		return Usagef("config %s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return nil // an empty file
	}
	isKey, isSection := map[string]bool{}, map[string]bool{}
	for _, k := range known {
		isKey[k] = true
	}
	names, _ := sections()
	for _, s := range names {
		isSection[s] = true
	}
	seen := map[string]int{} // key -> line
	var walk func(prefix string, n *yaml.Node) error
	walk = func(prefix string, n *yaml.Node) error {
		if n.Kind != yaml.MappingNode {
			if prefix == "" {
				return Usagef("config %s: line %d: want a mapping of sections (model, train, ...), not a %s", file, n.Line, nodeKind(n))
			}
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			if kn.Tag == "!!merge" { // `<<: *anchor`: viper resolves it
				continue
			}
			key := strings.ToLower(prefix + kn.Value) // viper's keys are case-insensitive
			switch {
			case isKey[key]:
				if line, ok := seen[key]; ok {
					return Usagef("config %s: line %d: key %s is already set on line %d", file, kn.Line, key, line)
				}
				seen[key] = kn.Line
			case isSection[key] && vn.Kind == yaml.MappingNode:
				if err := walk(key+".", vn); err != nil {
					return err
				}
			case isSection[key] && vn.Tag == "!!null": // `train:` with nothing under it
			case isSection[key]:
				return Usagef("config %s: line %d: %s is a section: its keys go under it (%s:\n  key: value), not a %s", file, kn.Line, key, key, nodeKind(vn))
			default:
				return Usagef("config %s: line %d: unknown key %s%s", file, kn.Line, key, suggestKey(key, known))
			}
		}
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	return walk("", root)
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "value"
	}
	return "node"
}
