// Package schemas holds the Stepwise wire protocol: PROTOCOL.md in prose,
// one JSON Schema (draft 2020-12) per message body, the header sets, an
// AsyncAPI 3 document naming every topic, the conformance vectors that
// every worker SDK replays, and the Go types of every message with the
// codec of the state record.
//
// # Where it sits
//
// Under every hop of the data flow, doing no I/O. Every Go producer and
// consumer of a topic uses the types here: the client and the API (Start,
// Cancel), the processors (Request, Record, Completion, the header names),
// the Go worker SDK (headers, StepError), the view and `stepwise get`
// (Record, Completion). The read side therefore depends on the protocol,
// not on the state machine. The tests of this package check that these
// types, what each Go producer writes, the examples and the vectors agree
// with the schemas.
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
