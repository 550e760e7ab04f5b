// Package logkey holds the log/slog attribute keys every part of Stepwise
// logs under, defined once so that a log query for one request
// (request=..., workflow=..., step=..., attempt=...) finds its lines from
// the processors, the API, the Go worker SDK and the bridge alike. It sits
// beside the data flow: nothing here reads or writes a topic.
package logkey

// Keys of a line about a request. A line about a request carries
// Request and, where known, Workflow, Step and Attempt.
const (
	Request  = "request"  // request id
	Workflow = "workflow" // workflow name
	Step     = "step"     // step path
	Attempt  = "attempt"  // attempt number from 1
	Version  = "version"  // definition version
)

// Keys of where a record was read or written.
const (
	Topic     = "topic"
	Partition = "partition"
	Offset    = "offset"
	Queue     = "queue"
	Source    = "source" // a processor's input: topic/partition/offset, or timer/...
)

// Other keys repeated across packages.
const (
	Error    = "error"    // an error, in every part (the Python and TypeScript SDKs use the same)
	Duration = "duration" // how long something took
	RetryIn  = "retry_in" // how long until the next try
	Reason   = "reason"   // why an input changed nothing
	Problem  = "problem"  // what is wrong with an input
)
