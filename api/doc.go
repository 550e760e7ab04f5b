// Package api is the HTTP face of Stepwise: the JSON API and the web UI,
// answered from a view.View of the state topic.
//
// # What comes in
//
// HTTP requests. Reads (status, lists, payloads, live updates) are answered
// from the view alone; starts and cancels are checked here and produced to
// the requests topic by package client (by key hash, which fixes the home
// partition). Nothing else is written.
//
// # HTTP
//
// Server serves, on one address:
//
//	/api/v1/...              the JSON API (OpenAPI 3 document at
//	                         /api/v1/openapi.json)
//	/api/v1/requests/{id}/events  server-sent events of one request
//	/                        the web UI (embedded assets, no CDN)
//
// Every /api/v1 endpoint needs a scope (read, start, operate, admin) of a
// bearer token once Config.Tokens has any (auth.go); unsafe methods take
// only JSON bodies from the API's own origin.
//
// Payloads are bounded in status documents (view.PreviewLimit); the full
// payload of a step is fetched on its own.
package api
