// Package client starts, cancels, follows and inspects Stepwise requests
// from Go, speaking the protocol of schemas/PROTOCOL.md directly to Kafka.
//
// # Where it sits
//
//	Start, Cancel ──► requests (key: request id, murmur2-hashed partition = home partition)
//	Wait          ◄── completions (the home partition, read_committed)
//	Get           ◄── state (every partition, read_committed, up to the last stable offset)
//
// Processors own everything in between. The client holds no state beyond
// the completions offset it noted before each Start, so that Wait sees a
// completion written however soon after the start.
//
// # Cost
//
// Start, Cancel and Wait touch one partition. Get reads the whole state
// topic, which suits a command line and tests; services answering status
// queries at volume should use the API's materialised view instead.
package client
