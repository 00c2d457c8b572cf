package main

import (
	"runtime"
	"runtime/debug"
)

// commit is set by the Makefile (-ldflags -X main.commit=...) for builds
// where Go's own VCS stamp is missing (go build outside a checkout, -buildvcs=false).
var commit string

// versionString is the module version and the git commit the binary was
// built from ("+dirty" when the tree had uncommitted changes).
func versionString() string {
	ver, rev, dirty := "devel", commit, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			ver = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value[:min(12, len(s.Value))]
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	if dirty {
		rev += "+dirty"
	}
	return ver + " (commit " + rev + ", " + runtime.Version() + ")"
}
