package schemas

// Header names of the protocol (headers.schema.json). Every value is a
// UTF-8 string.
const (
	HeaderRequest        = "stepwise-request"         // request id; tasks and results
	HeaderWorkflow       = "stepwise-workflow"        // workflow name; tasks
	HeaderStep           = "stepwise-step"            // step path; tasks and results
	HeaderAttempt        = "stepwise-attempt"         // attempt number from 1, decimal; tasks and results
	HeaderInstance       = "stepwise-instance"        // graph instance id; tasks
	HeaderReplyTopic     = "stepwise-reply-topic"     // where the result goes; tasks
	HeaderReplyPartition = "stepwise-reply-partition" // partition of the reply topic, decimal; tasks
	HeaderDeadline       = "stepwise-deadline"        // optional RFC 3339 time; tasks
	HeaderStatus         = "stepwise-status"          // StatusOK or StatusError; results
	HeaderWorker         = "stepwise-worker"          // optional id of the worker instance; results
	HeaderControl        = "stepwise-control"         // ControlCancel on a control message of a task topic

	// HeaderHeartbeat is optional on a task: the interval, in decimal
	// milliseconds, at which the worker sends heartbeats while it runs it.
	HeaderHeartbeat = "stepwise-heartbeat-interval"
	// W3C trace context (PROTOCOL.md, "Tracing"): optional on starts,
	// tasks and results. On a start, the caller's span; on a task, the
	// span of the step attempt; on a result, the worker's handler span.
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// Values of HeaderControl. A record of a task topic with this header is
// not a task: it tells the workers about the task of the same request,
// step and attempt (its key and headers), which it follows on the same
// partition.
const (
	ControlCancel = "cancel" // stop running the task; no result is wanted
)

// Values of HeaderStatus.
const (
	StatusOK    = "ok"    // the value is the step's output
	StatusError = "error" // the value is {"message": ..., "retryable": ...}

	// StatusHeartbeat marks a heartbeat, not a result: the attempt is
	// alive; the value is {"details": {...}} or {} (heartbeat.schema.json).
	StatusHeartbeat = "heartbeat"
)

// RequestIDPattern is the pattern every request id matches.
const RequestIDPattern = `^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`
