package noisehs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretHygiene (security.md T20): the package never imports math/rand, and never compares
// with bytes.Equal or == on byte slices or arrays that may hold secrets; secrets are compared
// with crypto/subtle or hmac.Equal.
func TestSecretHygiene(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			if p := strings.Trim(imp.Path.Value, `"`); p == "math/rand" || p == "math/rand/v2" {
				t.Errorf("%s imports %s: use crypto/rand", name, p)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.SelectorExpr:
				if id, ok := x.X.(*ast.Ident); ok && id.Name == "bytes" && x.Sel.Name == "Equal" {
					t.Errorf("%s: bytes.Equal at %s: compare secrets with subtle.ConstantTimeCompare or hmac.Equal", name, fset.Position(x.Pos()))
				}
			case *ast.BinaryExpr:
				if x.Op != token.EQL && x.Op != token.NEQ {
					return true
				}
				// Byte arrays compared with == are keys, SIDs, tags or kids here: forbid them
				// unless one side is a constant or a length.
				for _, side := range []ast.Expr{x.X, x.Y} {
					if looksSecret(side) {
						t.Errorf("%s: %s compared with %s at %s: use crypto/subtle", name, exprString(side), x.Op, fset.Position(x.Pos()))
					}
				}
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatal("no source files checked")
	}
}

// looksSecret reports whether e names a field or variable that holds key material.
func looksSecret(e ast.Expr) bool {
	var name string
	switch x := e.(type) {
	case *ast.Ident:
		name = x.Name
	case *ast.SelectorExpr:
		name = x.Sel.Name
	default:
		return false
	}
	switch strings.ToLower(name) {
	case "key", "sid", "psk", "kid", "tag", "private", "secret", "up", "down", "kbind", "k_bind":
		return true
	}
	return false
}

func exprString(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return exprString(x.X) + "." + x.Sel.Name
	}
	return "expression"
}
