package api

import (
	"context"
	_ "embed"
	"net/http"
	"time"

	"github.com/baton-run/baton/internal/store"
)

//go:embed openapi.yaml
var openapiYAML []byte

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz fails while draining (so load balancers stop sending first), when
// the database does not answer, and while its schema is not one this binary
// runs against (none yet, behind during an upgrade, a failed migration).
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeProblem(w, r, s.log, problem(http.StatusServiceUnavailable, "draining", "", "the server is shutting down"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	schema, err := store.ReadSchema(ctx, s.pool)
	if err != nil {
		s.log.Debug("not ready", "error", err) // its detail may name the database's host and user
		p := problem(http.StatusServiceUnavailable, "unavailable", "", "the database does not answer")
		p.retryAfter = "2"
		writeProblem(w, r, s.log, p)
		return
	}
	if err := schema.Check(); err != nil {
		p := problem(http.StatusServiceUnavailable, "schema_not_ready", "", "%s", err)
		p.retryAfter = "2"
		writeProblem(w, r, s.log, p)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(openapiYAML)
}
