package compact_test

// The import rules of docs/ARCHITECTURE.md, checked against the tree: the
// package table there is read as the rules (floor, package, what it may
// import in this module), and every package's non-test files, under every
// build tag, must import exactly what its row lists, only from lower
// floors; nothing outside internal/gpu imports a backend package. A new
// package or import is a new row or cell in the table, so the document
// stays true.

import (
	"bufio"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// row is one package of the architecture table.
type row struct {
	floor   int
	imports []string
}

// tableRow matches a row: | floor | `package`[, `package`] | holds | imports |.
var (
	tableRow = regexp.MustCompile(`^\|\s*(\d+)\s*\|([^|]*)\|.*\|([^|]*)\|\s*$`)
	quoted   = regexp.MustCompile("`([^`]+)`")
)

// readTable reads the package table of docs/ARCHITECTURE.md.
func readTable(t *testing.T) map[string]row {
	t.Helper()
	f, err := os.Open(filepath.Join("docs", "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]row{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		m := tableRow.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		floor, _ := strconv.Atoi(m[1])
		var imports []string
		for _, q := range quoted.FindAllStringSubmatch(m[3], -1) {
			imports = append(imports, q[1])
		}
		for _, pkg := range quoted.FindAllStringSubmatch(m[2], -1) {
			if _, dup := rows[pkg[1]]; dup {
				t.Errorf("ARCHITECTURE.md lists %s twice", pkg[1])
			}
			rows[pkg[1]] = row{floor, imports}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatal("no package table in docs/ARCHITECTURE.md")
	}
	return rows
}

// moduleImports maps every package directory of the module that has
// non-test Go files to the packages of this module its non-test files
// import (all build tags: a file for another platform counts too).
func moduleImports(t *testing.T) map[string][]string {
	t.Helper()
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^module\s+(\S+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod names no module")
	}
	prefix := string(m[1]) + "/"
	pkgs := map[string]map[string]bool{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		if pkgs[dir] == nil {
			pkgs[dir] = map[string]bool{}
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, prefix) {
				pkgs[dir][strings.TrimPrefix(p, prefix)] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for dir, imps := range pkgs {
		if dir == "." {
			continue // this test's own directory holds no package
		}
		out[dir] = []string{}
		for p := range imps {
			out[dir] = append(out[dir], p)
		}
		sort.Strings(out[dir])
	}
	return out
}

func TestImportRules(t *testing.T) {
	rules := readTable(t)
	actual := moduleImports(t)
	for pkg := range rules {
		if _, ok := actual[pkg]; !ok {
			t.Errorf("ARCHITECTURE.md lists %s, which holds no Go package", pkg)
		}
	}
	var pkgs []string
	for pkg := range actual {
		pkgs = append(pkgs, pkg)
	}
	sort.Strings(pkgs)
	for _, pkg := range pkgs {
		r, ok := rules[pkg]
		if !ok {
			t.Errorf("%s is not in ARCHITECTURE.md's package table (it imports %v)", pkg, actual[pkg])
			continue
		}
		for _, imp := range actual[pkg] {
			if !slices.Contains(r.imports, imp) {
				t.Errorf("%s imports %s, which its row in ARCHITECTURE.md does not allow", pkg, imp)
			}
		}
		for _, imp := range r.imports {
			if !slices.Contains(actual[pkg], imp) {
				t.Errorf("ARCHITECTURE.md says %s imports %s; it does not (update the row)", pkg, imp)
			}
			if q, ok := rules[imp]; ok && q.floor >= r.floor {
				t.Errorf("%s (floor %d) imports %s (floor %d): a package imports only lower floors", pkg, r.floor, imp, q.floor)
			}
		}
		// The backend wall: only internal/gpu's own packages see a backend,
		// and of those only device sees both.
		for _, imp := range actual[pkg] {
			if (imp == "internal/gpu/cuda" || imp == "internal/gpu/cpu") && !strings.HasPrefix(pkg, "internal/gpu/") {
				t.Errorf("%s imports the backend package %s: above internal/gpu, backends come from device.Open", pkg, imp)
			}
		}
	}
}
