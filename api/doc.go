// Package api is the read side of Stepwise: a view of every request built
// from the state topic, the HTTP API over it, and the web UI.
//
// # What comes in
//
// View consumes, read_committed and without a consumer group:
//
//	state        every partition from its start: the compacted request
//	             records (key = request id, or request id/child path) as
//	             the processors commit them; tombstones drop them
//	completions  from the end at start-up: one record per finished request,
//	             which wakes "start and wait" callers
//
// Status, lists and the live updates of the UI are answered from this view
// alone: no processor is asked, so any number of API replicas can run beside
// the processors, each with its own copy.
//
// # What goes out
//
// Starts and cancels are produced to the requests topic by package client
// (by key hash, which fixes the home partition). Nothing else is written.
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
// Payloads are bounded in status documents (PreviewLimit); the full payload
// of a step is fetched on its own.
package api
