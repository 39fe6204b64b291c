package api

import (
	"net/http"
	"strings"
)

// refuseCrossOrigin refuses state-changing requests (every method but GET,
// HEAD and OPTIONS) that a browser sends from another origin, on every
// route: the whole of /v1, the dashboard's forms, login and logout, with or
// without tokens. Without tokens (the loopback default) a page on any site
// could otherwise cancel jobs through a no-cors fetch to 127.0.0.1; with
// them, one on another port of the same host could post with the session
// cookie (SameSite counts ports as the same site). Browsers say where a
// request comes from (Sec-Fetch-Site, Origin); clients that send neither,
// such as curl or a Go program, are not browsers and pass.
func (s *Server) refuseCrossOrigin(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			writeProblem(w, r, s.log, problem(http.StatusForbidden, "cross_origin", "",
				"a browser sent this request from another origin; it was refused"))
			return
		}
		s.renderError(w, r, http.StatusForbidden, "This request came from another site and was refused.")
	}))
	return cop.Handler(next)
}
