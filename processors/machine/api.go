package machine

import (
	"encoding/json"
	"time"

	"github.com/stepwise-run/stepwise/schemas"
)

// EventKind says what happened to a request.
type EventKind uint8

const (
	EventStart  EventKind = iota + 1 // a client asked to start a request
	EventResult                      // a worker answered a task
	EventCancel                      // a client asked to cancel a request
	EventTimer                       // a timer set by an earlier transition fell due
	EventRetry                       // a client asked to run a failed or cancelled request again
	EventSignal                      // a client sent a signal to a request (signals.go)

	// EventHeartbeat: a worker said a running attempt is alive
	// (heartbeat.go).
	EventHeartbeat
)

// Event is the one input of the state machine.
type Event struct {
	Kind    EventKind
	Request string // request id, for every kind

	// Start.
	Workflow  string
	Version   int             // the definition version to run; 0: the current one
	Input     json.RawMessage // must be a JSON object
	Partition int32           // the home partition: where the start arrived
	// Trace and TraceParent go to the request's record as they are
	// (schemas.Record): chosen by the runtime, which traces; the machine
	// only keeps them and hands Trace to every dispatch.
	Trace, TraceParent string

	// Result and Timer: which dispatch they answer.
	Step    string // step path, e.g. "book-split" or "section-counts[3]/segment-word-counts"
	Attempt int

	// Result: Output when the worker succeeded (the raw bytes it sent; the
	// machine checks they are a JSON object), or Error when it failed.
	Output json.RawMessage
	Error  *schemas.StepError
	// Result: the id the worker gave itself (HeaderWorker; optional), kept
	// in the step's history.
	Worker string

	// Timer.
	Timer TimerKind

	// Signal: its name; Step is the step path it is for ("": every
	// step waiting for it) and Output its data (nil: {}).
	Signal string

	// Cancel: why, in the client's words (optional).
	Reason string

	// Cancel and Retry: the run of the request the client meant (Run of
	// the request's record when the client looked). A retry must name
	// the current run, so that a repeated retry does not run the request
	// a third time; a cancel naming another run is ignored, 0 cancels
	// whatever runs.
	Run int
	// Retry: run again from this step of the request's top-level graph,
	// and every step downstream of it, even those that succeeded. Empty:
	// only the steps that failed or were interrupted.
	From string
}

// TimerKind says why a timer was set.
type TimerKind uint8

const (
	TimerRetry   TimerKind = iota + 1 // backoff over: dispatch the next attempt
	TimerTimeout                      // the attempt took too long: a retryable failure
	TimerExpire                       // a finished request's record may be forgotten
	TimerSpawn                        // create the next slice of a wide fan-out's children (spawn.go)

	// TimerDeadline: the workflow's deadline passed, the run fails
	// (sleep.go).
	TimerDeadline
	// TimerHeartbeat: a running attempt's heartbeat is due; without one
	// since, it fails (heartbeat.go).
	TimerHeartbeat
)

// Timer is a due time kept in state. The runtime indexes timers in memory
// (rebuilt from records with Timers on restore) and feeds an EventTimer with
// the same Key, Step, Attempt and Timer kind once At has passed. A timer
// that no longer matches the state when it fires is ignored, so clearing is
// an optimisation, not a requirement.
type Timer struct {
	Request string
	Step    string // step path; "" for TimerExpire and TimerDeadline
	Attempt int    // TimerDeadline: the run of the request
	Kind    TimerKind
	At      time.Time
}

// Store is the machine's read access to state: the committed records of the
// partition plus whatever this batch already wrote. Records returned must
// not be modified; the machine writes new values through Effects.Writes.
type Store interface {
	Get(key string) *schemas.Record // nil when absent
}

// Effects is everything one transition asks the runtime to do. The runtime
// writes all of it, with the consumed offsets, in one Kafka transaction.
type Effects struct {
	Writes      []Write              // state records, in order; apply in order
	Dispatches  []Dispatch           // tasks to produce
	Revokes     []Revoke             // dispatched tasks whose work is no longer wanted
	Completions []schemas.Completion // requests that finished
	SetTimers   []Timer
	ClearTimers []Timer
	// Ignored explains why an event changed no state (duplicate, stale,
	// unknown request...), and Reason classifies it; both are empty when
	// the event was applied. For logs and counters only.
	Ignored string
	Reason  Reason
}

// Reason classifies an input that changed no state, for the counters of
// dropped inputs (a label value: lower case, underscores). The runtime adds
// reasons of its own for inputs that never reach the machine.
type Reason string

// Reasons the machine gives.
const (
	ReasonInvalidID        Reason = "invalid_id"         // a start whose id no record can be keyed by (answered with a failed completion)
	ReasonDuplicateStart   Reason = "duplicate_start"    // a start of an id already known (the first start wins)
	ReasonUnknownRequest   Reason = "unknown_request"    // a result or timer for a request this partition does not hold
	ReasonFinishedRequest  Reason = "finished_request"   // a result or timer for a request already finished
	ReasonUnknownInstance  Reason = "unknown_instance"   // a result naming a fan-out child that does not exist or has finished
	ReasonUnknownStep      Reason = "unknown_step"       // a result naming no dispatched step of its instance
	ReasonWorkflowGone     Reason = "workflow_undefined" // a result for a workflow no longer defined
	ReasonStaleResult      Reason = "stale_result"       // a result for an attempt that is no longer running (redelivery, late answer)
	ReasonCancelIgnored    Reason = "cancel_ignored"     // a cancel of an unknown or finished request, or of another run
	ReasonRetryIgnored     Reason = "retry_ignored"      // a retry of an unknown, running or succeeded request, of another run, or from a step it cannot run from
	ReasonStaleTimer       Reason = "stale_timer"        // a timer that no longer matches the state
	ReasonUnknownEventKind Reason = "unknown_event"      // an event of a kind the machine does not know
)

// Write is one state record to produce. Record nil is a tombstone.
type Write struct {
	Key    string
	Record *schemas.Record
}

// Dispatch is one task message for the workers of Queue.
type Dispatch struct {
	Queue     string
	Request   string
	Workflow  string
	Step      string // step path
	Attempt   int
	Instance  string // id of the graph instance: request id, or the fan-out child's id
	Input     json.RawMessage
	Deadline  time.Time // zero: none
	Trace     string    // the request's Record.Trace
	Partition int32     // home partition: the worker replies there
	// Heartbeat is the interval the worker is asked to send heartbeats
	// at while it runs the task; 0: none.
	Heartbeat time.Duration
}

// Revoke tells the workers of Queue that a task they may be running is no
// longer wanted (the request was cancelled or failed): a cancel control
// message on the task's topic, with the task's key, so it follows the task
// on its partition.
type Revoke struct {
	Queue    string
	Request  string
	Workflow string
	Step     string // step path
	Attempt  int
	Reason   string
}
