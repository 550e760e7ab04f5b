package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// RecordVersion is the encoding version written in every state record's
// "v" field. Decode accepts every version up to this one; a change that old
// readers cannot ignore bumps it.
//
//   - v1: the first encoding.
//   - v2: "version", the workflow definition version a request runs on. A
//     v1 record has none and runs on version 1, which `stepwise run -f`
//     publishes from the same files the processors ran before.
const RecordVersion = 2

// Record is one value of the state table: the state of one graph instance,
// either a whole request (Key == Request, Path == "") or one fan-out child
// (Key == Request + "/" + Path, Path ending in "[i]"), or the progress of
// one running fan-out step (Kind == KindFanout, Key == Request + "/" + the
// step's path, e.g. "r/docs[1]/pages"): how many of its children finished.
// Counting in a record of its own keeps a finishing child from rewriting
// its parent, whose step outputs may be large: the parent is written when
// the fan-out starts and at the join, not once per child.
//
// Encoding: JSON, field names as tagged below, "v" first. Outputs of the
// steps are kept raw. A fan-out step keeps only counters here; the outputs of
// its children live in the children's records and are gathered at the join,
// so no record grows with the fan-out width.
type Record struct {
	V         int                   `json:"v"`
	Kind      string                `json:"kind,omitempty"` // "" (instance) or KindFanout
	Request   string                `json:"request"`
	Workflow  string                `json:"workflow"`
	Version   int                   `json:"version,omitempty"` // definition version of Workflow; 0 (records of v1): version 1
	Path      string                `json:"path,omitempty"`    // child path, e.g. "docs[1]/pages[2]"; "" for the request
	Task      string                `json:"task,omitempty"`    // the task a child runs
	ID        string                `json:"id,omitempty"`      // child id: the element's UUID "id", else the key
	Partition int32                 `json:"partition"`         // home partition
	Status    Status                `json:"status"`
	Input     json.RawMessage       `json:"input,omitempty"`
	Steps     map[string]*StepState `json:"steps,omitempty"`
	Output    json.RawMessage       `json:"output,omitempty"` // the graph's output once succeeded
	Error     *Failure              `json:"error,omitempty"`
	Created   time.Time             `json:"created"`
	Updated   time.Time             `json:"updated"`
	ExpireAt  time.Time             `json:"expireAt,omitzero"`  // finished requests: when the record is forgotten
	Retries   int                   `json:"retries,omitempty"`  // the request: retries asked for so far (Run - 1)
	Children  int                   `json:"children,omitempty"` // fan-out progress: children started
	Done      int                   `json:"done,omitempty"`     // fan-out progress: children finished
	Pending   int                   `json:"pending,omitempty"`  // fan-out progress: children not created yet (they are created in slices)
	// Signals are the signals the request received (the request's
	// record only), in arrival order, one per name and step: the first
	// wins. A wait step takes the first that is for it.
	Signals []ReceivedSignal `json:"signals,omitempty"`
	// Deadline is when the current run fails if it still runs (the
	// request's record only, when its workflow has a deadline).
	Deadline time.Time `json:"deadline,omitzero"`
	// Failed: fan-out progress: children that failed within the step's
	// tolerate bound (counted in Done too).
	Failed int `json:"failed,omitempty"`
	// Trace is the request's W3C traceparent, on the request's record
	// only: the request span when the processor traces, else the
	// caller's span passed on. TraceParent is the caller's span id when
	// the request span is its child. Both empty: not traced.
	Trace       string `json:"trace,omitempty"`
	TraceParent string `json:"traceParent,omitempty"`
}

// Run is the run of the request a root record is in: 1, then one more per
// retry.
func (r *Record) Run() int { return r.Retries + 1 }

// DefinitionVersion is the workflow version the record runs on.
func (r *Record) DefinitionVersion() int { return max(r.Version, 1) }

// FirstAttempt is the first attempt of the step in the current run.
func (s *StepState) FirstAttempt() int { return max(s.First, 1) }

// KindFanout marks a fan-out progress record.
const KindFanout = "fanout"

// Status of a request or child.
type Status string

const (
	Running         Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// StepState is the state of one step of one graph instance. A step not in
// the map has not started.
type StepState struct {
	Status  StepStatus `json:"status"`
	Attempt int        `json:"attempt,omitempty"`
	// First is the first attempt of the step in the current run of the
	// request (0: 1); attempts count on across retries, and the retry
	// policy's budget is counted from First.
	First    int             `json:"first,omitempty"`
	Output   json.RawMessage `json:"output,omitempty"`   // plain step, once succeeded
	Children int             `json:"children,omitempty"` // fan-out: number of children
	Done     int             `json:"done,omitempty"`     // fan-out: children finished
	Error    string          `json:"error,omitempty"`    // last failure message
	Worker   string          `json:"worker,omitempty"`   // who answered the attempt (HeaderWorker)
	// Continued: the step failed for good but has continueOnFailure, so
	// the request went on without its output (status failed).
	Continued bool      `json:"continued,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	Ended     time.Time `json:"ended,omitzero"`
	RetryAt   time.Time `json:"retryAt,omitzero"`  // waiting for a retry
	Deadline  time.Time `json:"deadline,omitzero"` // running with a timeout
	// Earlier are the step's earlier attempts that did not succeed, oldest
	// first, at most MaxEarlierAttempts; EarlierDropped counts those left
	// out beyond. The current attempt is the step itself. A step that
	// succeeds at its first attempt writes none of this.
	Earlier        []Attempt `json:"earlier,omitempty"`
	EarlierDropped int       `json:"earlierDropped,omitempty"`
	// HeartbeatDue is when a running attempt of a step with a heartbeat
	// timeout fails unless a heartbeat (or its result) comes first;
	// Heartbeat is the details of the last heartbeat (a JSON object).
	HeartbeatDue time.Time       `json:"heartbeatDue,omitzero"`
	Heartbeat    json.RawMessage `json:"heartbeat,omitempty"`
}

// MaxEarlierAttempts bounds StepState.Earlier.
const MaxEarlierAttempts = 8

// Attempt is one finished attempt of a step that did not succeed.
type Attempt struct {
	Attempt int       `json:"attempt"`
	Outcome string    `json:"outcome"` // "failed" (timeouts included: see Error) or "cancelled"
	Error   string    `json:"error,omitempty"`
	Worker  string    `json:"worker,omitempty"` // who answered it (HeaderWorker), if it said
	Started time.Time `json:"started,omitzero"`
	Ended   time.Time `json:"ended,omitzero"`
}

// StepStatus of one step.
type StepStatus string

const (
	StepRunning   StepStatus = "running" // dispatched, or fan-out children running
	StepWaiting   StepStatus = "waiting" // failed, next attempt at RetryAt
	StepSucceeded StepStatus = "succeeded"
	StepFailed    StepStatus = "failed"
	// StepCancelled: stopped because the request was cancelled or
	// failed elsewhere while it ran or waited.
	StepCancelled StepStatus = "cancelled"
	// StepPending: to run again (a retry from an earlier step), not
	// started yet; Attempt keeps the last attempt so numbers count on.
	StepPending StepStatus = "pending"
	// StepSkipped: not run, because its when: was false or every one of
	// its dependencies was skipped (docs/expressions.md); it counts as
	// done and has no output.
	StepSkipped StepStatus = "skipped"
)

// ErrRecordVersion means a state record was written by a newer Stepwise.
var ErrRecordVersion = errors.New("stepwise: state record of a newer version; upgrade this processor")

// DecodeRecord parses a state record written by EncodeRecord.
func DecodeRecord(b []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("stepwise: decode state record: %w", err)
	}
	if r.V > RecordVersion {
		return nil, fmt.Errorf("%w (record v%d, known v%d)", ErrRecordVersion, r.V, RecordVersion)
	}
	return &r, nil
}

// Clone copies the record and its step states; payloads (raw JSON) are
// shared because nothing ever modifies them in place.
func (r *Record) Clone() *Record {
	c := *r
	if r.Steps != nil {
		c.Steps = make(map[string]*StepState, len(r.Steps))
		for k, s := range r.Steps {
			sc := *s
			c.Steps[k] = &sc
		}
	}
	if r.Error != nil {
		e := *r.Error
		c.Error = &e
	}
	c.Signals = slices.Clip(r.Signals) // appending copies
	return &c
}
