// Package schemas holds the Stepwise wire protocol: PROTOCOL.md in prose,
// one JSON Schema (draft 2020-12) per message body, the header sets, an
// AsyncAPI 3 document naming every topic, and the conformance vectors that
// every worker SDK replays.
//
// # Where it sits
//
// Nothing here runs in the data path. Clients, processors and workers each
// implement the protocol in their own language; these files are the one
// place it is defined, and the tests of this package check that the
// examples, the vectors and the Go types of processors/machine agree with
// the schemas.
//
// # Files
//
//	start.schema.json, cancel.schema.json   requests topic
//	task.schema.json                        tasks.<queue> topics (body; headers in headers.schema.json)
//	result.schema.json, result-error.schema.json   results topic
//	completion.schema.json                  completions topic
//	state-record.schema.json                state topic
//	headers.schema.json                     the task and result header sets, as objects
//	asyncapi.yaml                           channels, keys, headers and messages
//	vectors/worker.json                     task → expected result cases for worker SDKs
package schemas

import "embed"

// FS holds every schema, the AsyncAPI document, PROTOCOL.md and the
// vectors, by their paths in this directory.
//
//go:embed *.json asyncapi.yaml PROTOCOL.md vectors/*.json
var FS embed.FS
