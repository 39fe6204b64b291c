-- name: SessionCreate :exec
-- Starts a dashboard session that ends ttl_ms from now (database time).
INSERT INTO baton.dashboard_sessions (id_digest, token_mac, expires_at)
VALUES (@id_digest::bytea, @token_mac::bytea, now() + interval '1 millisecond' * @ttl_ms::bigint);

-- name: SessionGet :one
-- The token HMAC of a session that has not ended.
SELECT token_mac FROM baton.dashboard_sessions
WHERE id_digest = @id_digest::bytea AND expires_at > now();

-- name: SessionDelete :exec
DELETE FROM baton.dashboard_sessions WHERE id_digest = @id_digest::bytea;

-- name: SessionPrune :execrows
-- Deletes ended sessions (maintenance).
DELETE FROM baton.dashboard_sessions WHERE expires_at <= now();
