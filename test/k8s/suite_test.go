package k8s

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestEverySuiteFunctionIsWired keeps this package complete when the
// k8s.io/apiserver pin moves: every exported Run* function of
// pkg/storage/testing must be called from this package (benchmarks aside),
// and every Test function of the upstream files that upstreamTests mirrors
// must have an entry there.
func TestEverySuiteFunctionIsWired(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/apiserver").Output()
	if err != nil {
		t.Fatalf("locating k8s.io/apiserver's source with go list: %v", err)
	}
	root := strings.TrimSpace(string(out))

	// The suite's entry points.
	suite := map[string]bool{}
	for _, f := range parseDir(t, filepath.Join(root, "pkg/storage/testing"), false) {
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.IsExported() &&
				strings.HasPrefix(fn.Name.Name, "Run") && !strings.HasPrefix(fn.Name.Name, "RunBenchmark") {
				suite[fn.Name.Name] = true
			}
		}
	}
	if len(suite) == 0 {
		t.Fatal("found no Run* function in k8s.io/apiserver/pkg/storage/testing")
	}

	// What this package calls.
	called := map[string]bool{}
	for _, f := range parseDir(t, ".", true) {
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "storagetesting" {
					called[sel.Sel.Name] = true
				}
			}
			return true
		})
	}
	var missing []string
	for name := range suite {
		if !called[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	for _, name := range missing {
		t.Errorf("storagetesting.%s is never called: wire it in, as upstream's tests do", name)
	}

	// Upstream's Test functions in the mirrored files.
	for file, cases := range upstreamTests {
		src, err := parser.ParseFile(token.NewFileSet(), filepath.Join(root, file), nil, 0)
		if err != nil {
			t.Errorf("upstream file %s: %v", file, err)
			continue
		}
		seen := map[string]bool{}
		for _, d := range src.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") {
				continue
			}
			seen[fn.Name.Name] = true
			if _, ok := cases[fn.Name.Name]; !ok {
				t.Errorf("%s: %s is new: run it here or say in upstreamTests why not", file, fn.Name.Name)
			}
		}
		for name := range cases {
			if !seen[name] {
				t.Errorf("%s: upstreamTests lists %s, which is gone upstream", file, name)
			}
		}
	}
}

// parseDir parses the Go files of a directory: its test files when tests
// is set, else the others.
func parseDir(t *testing.T, dir string, tests bool) []*ast.File {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	fset := token.NewFileSet()
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") != tests {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}
