package bench

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/baton-run/baton/internal/store"
)

// benchDatabase recreates the bench database next to the one in
// databaseURL, migrated, and returns its name.
func benchDatabase(ctx context.Context, databaseURL string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", fmt.Errorf("bench: DATABASE_URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		name = "baton"
	}
	u.Path = "/" + name + "_bench"
	admin := *u
	admin.Path = "/postgres"
	cfg, err := store.ConnConfig(admin.String())
	if err != nil {
		return "", fmt.Errorf("bench: DATABASE_URL: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", fmt.Errorf("bench: connecting: %w", store.MapError(err))
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name + "_bench"}.Sanitize()+" WITH (FORCE)"); err != nil {
		return "", fmt.Errorf("bench: dropping the previous bench database: %w", err)
	}
	if err := store.MigrateUp(ctx, u.String()); err != nil {
		return "", err
	}
	return name + "_bench", nil
}

// withDatabase is databaseURL naming another database.
func withDatabase(databaseURL, name string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", fmt.Errorf("DATABASE_URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func dbName(u string) string {
	p, _ := url.Parse(u)
	return strings.TrimPrefix(p.Path, "/")
}
