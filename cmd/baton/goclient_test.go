package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
)

// Clients from any generator: oapi-codegen (pinned as a tool of
// clients/go's module) makes a Go client of api/openapi.yaml with its
// default options, the committed one is what it makes, and that client
// submits, gets, lists and cancels against a real server. Before,
// oapi-codegen refused the document ("duplicate typename 'Queue'": a
// parameter and a schema shared the name) and made float32 of numbers
// without a format.
func TestGoClientFromOapiCodegen(t *testing.T) {
	t.Parallel()
	dir, err := filepath.Abs("../../clients/go")
	require.NoError(t, err)
	// The committed configuration, writing elsewhere.
	tmp := t.TempDir()
	out := filepath.Join(tmp, "client.gen.go")
	config, err := os.ReadFile(filepath.Join(dir, "oapi-codegen.yaml"))
	require.NoError(t, err)
	config = []byte(strings.Replace(string(config), "output: client.gen.go", "output: "+out, 1))
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "config.yaml"), config, 0o600))
	gen := exec.Command("go", "tool", "oapi-codegen", "-config", filepath.Join(tmp, "config.yaml"), "../../api/openapi.yaml")
	gen.Dir = dir
	b, err := gen.CombinedOutput()
	require.NoError(t, err, "%s", b)
	made, err := os.ReadFile(out)
	require.NoError(t, err)
	committed, err := os.ReadFile(filepath.Join(dir, "client.gen.go"))
	require.NoError(t, err)
	require.Equal(t, string(made), string(committed), "clients/go/client.gen.go is out of date with api/openapi.yaml: run make generate")
	require.NotContains(t, string(committed), "float32", "every number has a format")

	_, u := dbtest.NewWithURL(t)
	srv := startServer(t, u, nil, "serve")
	run := exec.Command("go", "test", "-count=1", "-run", "TestAgainstAServer", "-v", "./...")
	run.Dir = dir
	run.Env = append(os.Environ(), "BATON_TEST_URL="+srv.base)
	b, err = run.CombinedOutput()
	require.NoError(t, err, "%s", b)
	require.Contains(t, string(b), "--- PASS: TestAgainstAServer")
}
