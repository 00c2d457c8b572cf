// Package configs embeds the shipped configuration files, so that a run
// without --config can start from the tiny one wherever the binary is.
package configs

import "embed"

// FS holds every shipped *.yaml.
//
//go:embed *.yaml
var FS embed.FS

// Builtin is the prefix that names an embedded file as a --config path
// ("builtin:tiny.yaml").
const Builtin = "builtin:"

// Names lists the embedded configs' file names, sorted.
func Names() []string {
	ents, _ := FS.ReadDir(".")
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
