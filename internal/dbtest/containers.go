//go:build containers

package dbtest

import (
	"context"

	"github.com/testcontainers/testcontainers-go/modules/postgres"
)

// With -tags containers, a throwaway Postgres 15 container is the last resort
// when no server answers. It lives as long as the test process.
func init() {
	startContainer = func(ctx context.Context) (string, error) {
		ctr, err := postgres.Run(ctx, "postgres:15-alpine",
			postgres.WithDatabase("postgres"), postgres.BasicWaitStrategies())
		if err != nil {
			return "", err
		}
		return ctr.ConnectionString(ctx, "sslmode=disable")
	}
}
