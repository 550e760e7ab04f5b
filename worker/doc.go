// Package worker is the Go SDK for Stepwise workers: programs that run the
// steps of workflows.
//
// # Where it sits
//
// Processors decide what runs next and write one task record per step
// attempt to the topic of the step's queue, tasks.<queue>. A worker of that
// queue consumes the task, runs the Handler registered for the queue, and
// produces the outcome to the results topic, on the partition the task
// names; the processor owning that partition takes it from there.
//
//	processors ──► tasks.<queue> ──► Worker (Handler) ──► results[reply partition] ──► processors
//
// The worker knows nothing about workflows: no definitions, no state. The
// protocol it speaks is schemas/PROTOCOL.md, and its tests replay the
// conformance vectors in schemas/vectors.
//
// # Delivery
//
// Each queue is consumed by its own consumer group, "<prefix>workers.<queue>"
// by default, reading committed records only, so each queue scales on its
// own by running more workers. Up to Concurrency handlers of a queue run at
// once. A task's offset is committed only after its result was acknowledged
// by the broker, and never past a task still running in the same partition:
// delivery is at-least-once, and after a crash the tasks whose results were
// not acknowledged run again. Processors discard duplicate and stale
// results, so handlers need not be idempotent towards Stepwise (only towards
// whatever else they touch).
//
// # Outcomes
//
// A handler returns the step's output, a JSON object (see JSON), or an
// error. An error is retried per the step's retry policy unless wrapped with
// Permanent. A panic is a retryable error. A task the worker cannot read (its
// value is not a JSON object, a header is unparsable) fails permanently
// without running the handler. A task whose deadline has passed fails
// retryably without running the handler.
//
// # Cancellation
//
// When a request is cancelled, or fails elsewhere, the processors write a
// cancel control message after each of its tasks in flight
// (schemas/PROTOCOL.md). The handler running that task sees its context
// cancelled, context.Cause(ctx) being ErrCancelled; a task not started yet
// is skipped. No result is sent for either, and both are committed.
//
// # Heartbeats
//
// A task whose step has a heartbeat timeout states an interval
// (Task.HeartbeatInterval). While its handler runs, the worker sends a
// heartbeat every interval on its own; Task.Heartbeat sends one at once
// with progress details. An attempt silent for the whole timeout fails,
// retryable (schemas/PROTOCOL.md, Heartbeats).
//
// # Shutdown
//
// Run returns when its context is cancelled, after a drain: no new task
// starts, running handlers get up to the drain timeout to finish, their
// results are produced and committed, and the worker leaves its groups so
// the partitions move to the remaining workers at once.
package worker
