package baton_test

import (
	"context"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/worker"
)

// TestComposeFileIsValid loads docker-compose.yml with Compose v2's own
// loader (no Docker engine needed) and checks the topology it promises.
func TestComposeFileIsValid(t *testing.T) {
	t.Parallel()
	opts, err := cli.NewProjectOptions([]string{"docker-compose.yml"}, cli.WithName("baton"))
	require.NoError(t, err)
	project, err := opts.LoadProject(context.Background())
	require.NoError(t, err)

	require.ElementsMatch(t, []string{"postgres", "migrate", "worker"}, project.ServiceNames())
	w, err := project.GetService("worker")
	require.NoError(t, err)
	require.NotNil(t, w.Deploy)
	require.Equal(t, 3, *w.Deploy.Replicas)
	require.Equal(t, "service_completed_successfully", w.DependsOn["migrate"].Condition)
	require.Equal(t, []string{"worker", "--config", "/etc/baton/examples/pipeline.yaml"}, []string(w.Command))
	m, err := project.GetService("migrate")
	require.NoError(t, err)
	require.Equal(t, []string{"migrate", "up"}, []string(m.Command))
	require.Equal(t, "service_healthy", m.DependsOn["postgres"].Condition)

	// The image copies examples/ to /etc/baton/examples: the file must be valid.
	_, err = worker.LoadPipeline("examples/pipeline.yaml")
	require.NoError(t, err)
}
