package api_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/testenv"
)

// TestTypeScriptClient builds the client a TypeScript user would generate
// from openapi.yaml (openapi-typescript and openapi-fetch, the versions
// pinned in clients/typescript/package-lock.json), checks that the
// committed types are what the generator makes of the document today, that
// tsc type-checks them with strict settings and with its defaults, and
// drives a real server with
// the client: submit, batch, get, list with paging, cancel, retry, errors.
func TestTypeScriptClient(t *testing.T) {
	if testing.Short() {
		t.Skip("installs npm packages")
	}
	testenv.LookPath(t, "the TypeScript client's test", "npm")
	testenv.LookPath(t, "the TypeScript client's test", "node")
	t.Parallel()
	dir := filepath.Join("..", "clients", "typescript")
	run := func(name string, args ...string) string {
		t.Helper()
		c := exec.Command(name, args...)
		c.Dir = dir
		out, err := c.CombinedOutput()
		require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
		return string(out)
	}
	run("npm", "ci", "--no-audit", "--no-fund")

	generated := filepath.Join(t.TempDir(), "schema.ts")
	run("npm", "exec", "--", "openapi-typescript", filepath.Join("..", "..", "api", "openapi.yaml"), "-o", generated)
	want, err := os.ReadFile(generated)
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(dir, "src", "schema.ts"))
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "clients/typescript/src/schema.ts is out of date with openapi.yaml: run make generate")

	run("npm", "exec", "--", "tsc", "--noEmit")                 // tsconfig.json: strict
	run("npm", "exec", "--", "tsc", "--noEmit", "src/index.ts") // no tsconfig: tsc's defaults
	run("npm", "exec", "--", "tsc")

	c, pool := setup(t)
	node := exec.Command("node", filepath.Join("dist", "e2e.js"))
	node.Dir = dir
	node.Env = append(os.Environ(), "BATON_URL="+c.srv.URL, "BATON_API_TOKEN="+token)
	out, err := node.CombinedOutput()
	require.NoError(t, err, "node dist/e2e.js:\n%s", out)

	// What the script did is in the database.
	var seen struct {
		Job   int64   `json:"job"`
		Batch []int64 `json:"batch"`
	}
	require.NoError(t, json.Unmarshal(out, &seen), "%s", out)
	require.Len(t, seen.Batch, 3)
	require.Equal(t, 4, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'emails'"))
	var state string
	var changes []string
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT j.state, array_agg(e.to_state::text ORDER BY e.id) FROM baton.jobs j JOIN baton.job_events e ON e.job_id = j.id WHERE j.id = $1 GROUP BY j.state`,
		seen.Job).Scan(&state, &changes))
	require.Equal(t, "available", state)
	require.Equal(t, []string{"available", "canceled", "available"}, changes)
}
