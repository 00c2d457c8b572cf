package gpu

import (
	"regexp"
	"testing"
)

// Every op has its own name, usable as the stem of a C identifier: the
// CUDA backend binds <name>_bf16 and <name>_f32 by it.
func TestMapOpNames(t *testing.T) {
	ident := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	seen := map[string]MapOp{}
	for _, op := range MapOps() {
		name := op.String()
		if !ident.MatchString(name) {
			t.Errorf("MapOp %d: name %q is not a lower-case C identifier", int(op), name)
		}
		if prev, dup := seen[name]; dup {
			t.Errorf("MapOps %d and %d are both %q", int(prev), int(op), name)
		}
		seen[name] = op
	}
	for _, bad := range []MapOp{-1, MapOp(len(MapOps()))} {
		if bad.Valid() || ident.MatchString(bad.String()) {
			t.Errorf("MapOp %d: valid %v, named %q", int(bad), bad.Valid(), bad.String())
		}
	}
}
