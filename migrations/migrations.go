// Package migrations embeds Baton's golang-migrate SQL files.
package migrations

import "embed"

// FS holds every NNNNNN_name.up.sql and .down.sql file of this folder.
//
//go:embed *.sql
var FS embed.FS
