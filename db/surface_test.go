package db_test

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The store API stays small and documented: at most 40 exported
// identifiers (types, functions, variables and constants; methods not
// counted), each with a doc comment (one on its group counts), and no
// function that takes a *pgxpool.Pool where a transaction would do.
func TestThePublicSurfaceIsSmallAndDocumented(t *testing.T) {
	fset := token.NewFileSet()
	paths, err := filepath.Glob("*.go")
	require.NoError(t, err)
	var files []*ast.File
	for _, path := range paths {
		if !strings.HasSuffix(path, "_test.go") {
			f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
			require.NoError(t, err)
			files = append(files, f)
		}
	}
	p, err := doc.NewFromFiles(fset, files, "github.com/baton-run/baton/db")
	require.NoError(t, err)
	require.NotEmpty(t, p.Doc, "package doc")

	var names, undocumented []string
	values := func(vs []*doc.Value) {
		for _, v := range vs {
			for _, spec := range v.Decl.Specs {
				s := spec.(*ast.ValueSpec)
				for _, n := range s.Names {
					names = append(names, n.Name)
					if v.Doc == "" && s.Doc.Text() == "" && s.Comment.Text() == "" {
						undocumented = append(undocumented, n.Name)
					}
				}
			}
		}
	}
	funcs := func(fs []*doc.Func) {
		for _, f := range fs {
			names = append(names, f.Name)
			if f.Doc == "" {
				undocumented = append(undocumented, f.Name)
			}
			for _, param := range f.Decl.Type.Params.List {
				require.NotContains(t, types(param.Type), "pgxpool.Pool", "%s takes a pool: take a Conn", f.Name)
			}
		}
	}
	values(p.Consts)
	values(p.Vars)
	funcs(p.Funcs)
	for _, typ := range p.Types {
		names = append(names, typ.Name)
		if typ.Doc == "" {
			undocumented = append(undocumented, typ.Name)
		}
		values(typ.Consts)
		values(typ.Vars)
		funcs(typ.Funcs)
	}
	t.Logf("%d exported identifiers: %s", len(names), strings.Join(names, " "))
	require.LessOrEqual(t, len(names), 40, "db exports too much")
	require.Empty(t, undocumented, "exported without a doc comment")
}

func types(e ast.Expr) string {
	var b strings.Builder
	ast.Inspect(e, func(n ast.Node) bool {
		if s, ok := n.(*ast.SelectorExpr); ok {
			if x, ok := s.X.(*ast.Ident); ok {
				b.WriteString(x.Name + "." + s.Sel.Name + " ")
			}
		}
		return true
	})
	return b.String()
}
