// Package machine is the pure state machine at the heart of the processors.
//
// # Where it sits
//
//	requests, results ──► runtime ──► Machine.Apply(state, event, now) ──► effects ──► runtime
//	                                                                       │
//	          state records, tasks.<queue>, completions (one Kafka transaction)
//
// The runtime (package processors) decodes a Kafka record into an Event,
// calls Apply with a read view of the partition's state, and writes the
// returned Effects together with the consumed offsets in one transaction.
// Apply does no I/O, starts no goroutine and never reads the clock: the same
// state, event and time always give the same effects. That is what lets the
// tests replay, duplicate and reorder events without a broker.
//
// # State
//
// A request is a tree of graph instances. The root instance (key: the request
// id) runs the workflow's graph; a fan-out step starts one child instance per
// list element (key: "<request>/<step>[<i>]", nested: "<request>/docs[1]/pages[2]"),
// each running the task's graph. Every instance is its own Record, so a wide
// fan-out writes many small records and no large one; the parent keeps only
// counters and the join gathers the children's outputs when it runs.
//
// # Data semantics (kept from the original manager)
//
//   - A step's input is the merge of its dependencies' outputs (JSON objects);
//     a key present in several keeps the value of the first dependency in
//     depends order. __start__'s output is the request input.
//   - A fan-out over itemListKey "sections" gives child i the step's input
//     without "sections" plus "section" set to element i. An element that is
//     an object with a UUID "id" gives the child that id.
//   - At the join, the fan-out step's output is the merge of the children's
//     outputs (first child wins), except that the element key ("section") is
//     collected from every child, in element order, into a list under the
//     list key ("sections"); a child without it contributes null, so
//     positions stay aligned. A missing list (or a value that is not a list)
//     completes the step at once with an empty output; an empty list with
//     {"sections": []}.
//   - A graph's output is the merge of its terminal steps' outputs, in
//     declaration order.
//
// # Failures
//
// A failed attempt is retried after the step's backoff while attempts remain
// and the error is retryable; a timeout is a retryable failure; otherwise
// the whole request fails at once, naming the step path, attempt and
// message. Results that do not match the current attempt of a running step
// (duplicates, stale attempts, unknown or finished requests) change nothing.
//
// # Steps that are not dispatched, and timers of the definition
//
// A wait step completes with the data of a signal sent to its request; a
// signal that comes before its step waits is kept on the request's record
// (signals.go). A sleep step succeeds when its time has passed; a
// workflow's deadline fails a run still running (sleep.go). A step with a
// heartbeat timeout fails an attempt whose worker went silent (heartbeat.go).
// Each file's comment lists its rules.
package machine
