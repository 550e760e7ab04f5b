// Package processors is the Kafka runtime of Stepwise: the thin,
// transactional shell around the pure state machine of package
// processors/machine.
//
// # What comes in
//
// Each processor replica joins the consumer group GroupID(prefix) and
// consumes two topics, read_committed:
//
//	requests   starts and cancels from clients (JSON body, key = request id)
//	results    step results from workers (headers stepwise-request, -step,
//	           -attempt, -status; value = output or error object)
//
// CoPartitionBalancer assigns partition numbers, so partition p of both
// topics always goes to the same replica: the replica that holds the state
// of every request whose home partition is p.
//
// # State
//
// On assignment (in the group callback, which holds fetching back) a replica
// reads partition p of the compacted state topic from its start to the high
// watermark of that moment and rebuilds the records and their timers
// (package catchup says when a partition is complete). On revoke or loss it
// forgets the partition. Due timers (retry backoff, step timeouts, expiry)
// are fed to the machine as events, inside the same loop as records.
//
// # What goes out, in one transaction per batch
//
//	state         new state records, partition p (key = request id or
//	              request id/child path; tombstone when forgotten)
//	tasks.<queue> the steps dispatched (headers per PROTOCOL.md; partition
//	              by key hash)
//	completions   one record per finished request, partition p
//	offsets       the consumed offsets of requests and results; in a
//	              batch of fired timers only, the timers' partitions'
//	              offsets again, unchanged, so that a replica the group
//	              has dropped is fenced by its generation
//
// In-memory state changes only after the broker confirmed the commit; an
// aborted batch (a rebalance, a produce error) is dropped and its records
// are consumed again.
//
// # Topics
//
// A processor refuses to start on a cluster whose topics differ from the
// plan of its workflow set (topics.Check); package topics creates them.
package processors
