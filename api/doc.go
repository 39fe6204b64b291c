// Package api is Baton's REST API (chi), its middleware, the OpenAPI document
// and the dashboard. It depends on db only; nothing imports it but cmd.
//
// The routes of DESIGN.md arrive with the REST API issue; until then jobs are
// submitted with `baton submit` or db.Submit.
package api
