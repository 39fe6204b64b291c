// Package api is Baton's HTTP face: the REST API on chi (/v1, with RFC 9457
// problems), the dashboard, /metrics and the probes. It depends on db only;
// nothing imports it but cmd, and it meets the worker only in the database.
//
// A file a resource: server.go (the router and its middleware, in order),
// jobs.go (submit, get, list, cancel, retry), queues.go (the queue view that
// /v1/queues, the dashboard and /metrics share; pause, resume, settings),
// decode.go (the strict, bounded request decoder), errors.go (the one error
// to problem+json writer), failures.go (limits on wrong tokens and failed
// sign-ins), health.go, metrics.go, dashboard.go (its pages, templates in
// web/), sessions.go (dashboard sign-in and sessions), and middleware_*.go,
// one concern each. openapi.yaml documents every route; tests hold the
// router and the document to each other.
package api
