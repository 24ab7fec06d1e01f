package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestMongoMaxBulk(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "BATCHSYNTH_MONGO_MAX_BULK" {
				return v
			}
			return ""
		}
	}
	c, err := FromEnv(env(""))
	if err != nil || c.MongoMaxBulk != 0 {
		t.Fatalf("unset: %d, %v; want 0 (by server)", c.MongoMaxBulk, err)
	}
	c, err = FromEnv(env("16"))
	if err != nil || c.MongoMaxBulk != 16 {
		t.Fatalf("16: %d, %v", c.MongoMaxBulk, err)
	}
	_, err = FromEnv(env("-1"))
	if err == nil || !strings.Contains(err.Error(), "BATCHSYNTH_MONGO_MAX_BULK") {
		t.Fatalf("-1: error %v, want one naming BATCHSYNTH_MONGO_MAX_BULK", err)
	}
}

// TestEveryVariableDocumented reads the repository's production Go files: every environment variable named
// there must be read by this package alone, listed in the README's table and printed by `batchsynth config`.
func TestEveryVariableDocumented(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	masked := map[string]bool{}
	for _, row := range (Config{}).Masked() {
		masked[row[0]] = true
	}
	// Test infrastructure reads variables of its own (BATCHSYNTH_TEST_*, the benchmarks' sizes); they are not
	// settings of batchsynth.
	testInfra := regexp.MustCompile(`^internal/(testenv|testfleet|bench|chaos)/`)
	varName := regexp.MustCompile(`^(REDIS_URL|MONGODB_[A-Z_]+|OPENAI_[A-Z_]+|BATCHSYNTH_[A-Z0-9_]+)$`)
	named := map[string]string{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "data" || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") || testInfra.MatchString(rel) {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if n.Kind == token.STRING {
					if s, err := strconv.Unquote(n.Value); err == nil && varName.MatchString(s) {
						named[s] = rel
					}
				}
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && id.Name == "os" && (n.Sel.Name == "Getenv" || n.Sel.Name == "LookupEnv" || n.Sel.Name == "Environ") &&
					!strings.HasPrefix(rel, "internal/config/") {
					t.Errorf("%s reads the environment (os.%s): configuration is read only in internal/config", rel, n.Sel.Name)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(named) < 20 {
		t.Fatalf("found only %d variables in the source: the scan is broken", len(named))
	}
	for name, file := range named {
		if !strings.Contains(string(readme), "| `"+name+"` |") {
			t.Errorf("%s (named in %s) is missing from the README's configuration table", name, file)
		}
		if !masked[name] {
			t.Errorf("%s (named in %s) is missing from `batchsynth config` (Config.Masked)", name, file)
		}
	}
}
