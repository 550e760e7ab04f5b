// Package view is the read model of Stepwise: an in-memory copy of every
// request, built from the state topic, and the documents answered from it
// (status, request lists, progress of fan-outs).
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
// No processor is asked, so any number of readers can run beside the
// processors, each with its own copy.
//
// # What goes out
//
// Nothing is written. Readers are `stepwise list` and package api, whose
// HTTP server and web UI answer status, lists and live updates from a View.
package view
