package baton_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/worker"
)

// TestComposeFileIsValid loads docker-compose.yml with Compose v2's own
// loader (no Docker engine needed) and checks the topology it promises.
func TestComposeFileIsValid(t *testing.T) {
	t.Parallel()
	project := loadCompose(t, "BATON_API_TOKENS=a-token-for-the-compose-test")

	require.ElementsMatch(t, []string{"postgres", "migrate", "serve", "worker"}, project.ServiceNames())
	m, err := project.GetService("migrate")
	require.NoError(t, err)
	require.Equal(t, []string{"migrate", "up"}, []string(m.Command))
	require.Equal(t, "service_healthy", m.DependsOn["postgres"].Condition)

	// Postgres is not published: it cannot collide with the host's 5432.
	pg, err := project.GetService("postgres")
	require.NoError(t, err)
	require.Empty(t, pg.Ports)

	// The API, dashboard and metrics, on the host's loopback only, with a
	// healthcheck on its readiness probe and a token it requires.
	s, err := project.GetService("serve")
	require.NoError(t, err)
	require.Equal(t, []string{"serve", "--addr", "0.0.0.0:8080"}, []string(s.Command))
	require.Len(t, s.Ports, 1)
	require.Equal(t, "127.0.0.1", s.Ports[0].HostIP)
	require.Equal(t, "8080", s.Ports[0].Published)
	require.Equal(t, uint32(8080), s.Ports[0].Target)
	require.Equal(t, "a-token-for-the-compose-test", *s.Environment["BATON_API_TOKENS"])
	require.NotNil(t, s.Environment["DATABASE_URL"])
	require.Equal(t, []string{"CMD", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/readyz"}, []string(s.HealthCheck.Test))
	require.Equal(t, "service_completed_successfully", s.DependsOn["migrate"].Condition)

	w, err := project.GetService("worker")
	require.NoError(t, err)
	require.NotNil(t, w.Deploy)
	require.Equal(t, 3, *w.Deploy.Replicas)
	require.Equal(t, "service_completed_successfully", w.DependsOn["migrate"].Condition)
	require.Equal(t, []string{"worker", "--config", "/etc/baton/examples/pipeline.yaml", "--metrics-addr", "0.0.0.0:9091"}, []string(w.Command))
	require.Equal(t, []string{"CMD", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9091/readyz"}, []string(w.HealthCheck.Test))
	require.Empty(t, w.Ports)

	// The healthchecks' curl is in the image.
	dockerfile, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	require.Regexp(t, `apt-get install [^\n]* curl`, string(dockerfile))

	// Baton's services connect as a role of their own; the superuser's
	// password is the postgres service's alone.
	superuser := *pg.Environment["POSTGRES_PASSWORD"]
	require.NotEmpty(t, superuser)
	role := project.Configs["baton-role"].Content
	require.Contains(t, role, "CREATE ROLE baton LOGIN PASSWORD")
	require.Contains(t, role, "ALTER DATABASE baton OWNER TO baton")
	for _, name := range []string{"migrate", "serve", "worker"} {
		svc, err := project.GetService(name)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(*svc.Environment["DATABASE_URL"], "postgres://baton:"), name)
		for k, v := range svc.Environment {
			require.NotContains(t, *v, superuser, "%s's %s holds the superuser's password", name, k)
		}
	}
	require.Equal(t, []string{"/docker-entrypoint-initdb.d/baton-role.sql"}, []string{pg.Configs[0].Target})

	// The image copies examples/ to /etc/baton/examples: the file must be valid.
	_, err = worker.LoadPipeline("examples/pipeline.yaml")
	require.NoError(t, err)
}

// Without a token the project does not load: serve listens beyond loopback
// and would refuse to start without one.
func TestComposeNeedsAToken(t *testing.T) {
	t.Parallel()
	opts, err := cli.NewProjectOptions([]string{"docker-compose.yml"}, cli.WithName("baton"), cli.WithEnv([]string{"BATON_API_TOKENS="}))
	require.NoError(t, err)
	_, err = opts.LoadProject(context.Background())
	require.ErrorContains(t, err, "set BATON_API_TOKENS")
}

func loadCompose(t *testing.T, env ...string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{"docker-compose.yml"}, cli.WithName("baton"), cli.WithEnv(env))
	require.NoError(t, err)
	project, err := opts.LoadProject(context.Background())
	require.NoError(t, err)
	return project
}
