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

func TestMaskHidesEveryCredential(t *testing.T) {
	urls := []struct {
		in      string
		secrets []string
		keep    []string // what still tells the setting apart
	}{
		{"mongodb://admin:hunter2pass@db1.example:27017,db2.example:27017/floridify?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:abc123secret",
			[]string{"hunter2pass", "abc123secret", "AWS_SESSION_TOKEN"}, []string{"db1.example", "admin"}},
		{"mongodb+srv://user:pw@host/db?authSource=admin", []string{":pw@"}, []string{"host/db"}},
		{"mongodb://db.example/?tls=true&tlsCertificateKeyFilePassword=f1lepass&sslpassword=sslpw9&TOKEN=tok3n",
			[]string{"f1lepass", "sslpw9", "tok3n"}, []string{"tls=true"}},
		{"mongodb://db.example/?ssl=true;password=s3micolon", []string{"s3micolon"}, []string{"ssl=true"}},
		{"mongodb://db.example/?%70assword=enc0ded", []string{"enc0ded"}, nil},
		{"redis://:r3dispass@cache.example:6379/0", []string{"r3dispass"}, []string{"cache.example:6379"}},
		{"rediss://default:r3dispass@cache.example:6380", []string{"r3dispass"}, []string{"default:xxxxx@cache.example"}},
		{"https://api.example/v1?api_key=k3yvalue&x=1#fr4gment", []string{"k3yvalue", "fr4gment"}, []string{"x=1"}},
		// Unparseable or opaque: no part of it comes out.
		{"mongodb://user:pa ss@db.example:notaport", []string{"user", "pa ss", "db.example", "notaport"}, nil},
		{"admin:s3cretword@db.example", []string{"admin", "s3cretword", "db.example"}, nil},
	}
	for _, c := range urls {
		got := MaskURL(c.in)
		for _, s := range c.secrets {
			if strings.Contains(got, s) {
				t.Errorf("MaskURL(%q) = %q shows %q", c.in, got, s)
			}
		}
		for _, k := range c.keep {
			if !strings.Contains(got, k) {
				t.Errorf("MaskURL(%q) = %q lost %q", c.in, got, k)
			}
		}
	}

	long := "sk-proj-Zx9Qw8Er7Ty6Ui5Op4As3Df2"
	for in, want := range map[string]string{
		"":                    "",
		"abcdefghi":           "****", // 9 characters: none shown
		"abcdefghijklmnopqrs": "****", // 19
		long:                  "sk-****",
	} {
		if got := MaskSecret(in); got != want {
			t.Errorf("MaskSecret(%q) = %q, want %q", in, got, want)
		}
	}

	c := Config{
		MongoURI:      urls[0].in,
		RedisURL:      "redis://:r3dispass@cache.example:6379/0",
		OpenAIKey:     long,
		OpenAIBaseURL: "https://api.example/v1?api_key=k3yvalue",
		APIToken:      "abcdefghi",
	}
	for _, row := range c.Masked() {
		for _, s := range []string{"hunter2pass", "abc123secret", "r3dispass", "k3yvalue", long[3:8], "abcdefghi", "ghi", "Df2"} {
			if strings.Contains(row[1], s) {
				t.Errorf("batchsynth config shows %q in %s = %q", s, row[0], row[1])
			}
		}
	}
}
