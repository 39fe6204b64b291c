-- Dashboard sessions the server can end. A signed-in browser holds a random
-- id in its cookie; the server keeps only the id's SHA-256 (a reader of this
-- table cannot take a session over), an HMAC of the id keyed by the API token
-- it signed in with (so that removing the token from BATON_API_TOKENS ends
-- its sessions, and the token itself is stored nowhere), and when it ends.
-- Logout deletes the row; maintenance deletes expired ones.
CREATE TABLE baton.dashboard_sessions (
    id_digest  bytea PRIMARY KEY,
    token_mac  bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX dashboard_sessions_expires_idx ON baton.dashboard_sessions (expires_at);
