// Package bridge serves queues of a Stepwise workflow from RabbitMQ, so that
// workers written for the original RabbitMQ workflow manager (its pyworker
// and jsworker dispatchers) run steps of a Kafka workflow unchanged. It is
// what `stepwise bridge amqp` runs.
//
// # Where it sits
//
//	processors ──► tasks.<queue> ──► bridge ──► AMQP queue <queue> ──► AMQP workers
//	processors ◄── results ◄──────── bridge ◄── reply queue ◄───────────────┘
//
// # In: tasks
//
// For each bridged queue the bridge is a worker of the queue (a member of
// its consumer group, reading tasks.<queue> read_committed, through the Go
// worker SDK). Each task is published to the AMQP queue of the same name
// on the default exchange (in the vhost of its Route, see WithRoute), as
// the original manager published it:
//
//   - body: the step's input, a JSON object;
//   - correlation_id: "<instance id>:<step name>" — the request id for a
//     top-level step, the fan-out child's id inside a task (see
//     CorrelationID);
//   - reply_to: this replica's reply queue;
//   - content_type application/json, delivery_mode persistent.
//
// The publish waits for RabbitMQ's publisher confirm; the task's Kafka
// offset is committed only after its result is produced, which is later
// still.
//
// # Out: results
//
// Replies arrive on the reply queue, matched to the waiting task by
// correlation id. The body becomes the step's output (decodeReply says
// which bodies are errors); the result goes to the partition named in the
// task's headers, and the reply is acknowledged to RabbitMQ only after
// Kafka acknowledged the result (worker.AfterResult).
//
// # Failures
//
// A crash of the bridge, of RabbitMQ or of a worker leaves the task's
// offset uncommitted or its AMQP message unacknowledged: the step runs
// again (the processor discards the duplicate result), it is never lost.
// After a reconnect every task still waiting is published again. Replies
// that cannot be used are logged and counted (Stats); see decodeReply.
//
// The bridge keeps no state of its own beyond the tasks in flight: several
// replicas share the queues' consumer groups, each with its own reply
// queue.
package bridge
