package schemas

import (
	"encoding/json"
	"regexp"
	"time"
)

// RequestID matches every valid request id (RequestIDPattern). It keeps
// ids usable in state keys ("/" separates child paths), in URLs and in
// logs.
var RequestID = regexp.MustCompile(RequestIDPattern)

// Values of the "type" field of a requests record.
const (
	TypeStart  = "start"
	TypeCancel = "cancel"
	TypeRetry  = "retry"
	TypeSignal = "signal" // signal.go
)

// Start asks for a request to run (start.schema.json); key: the id.
type Start struct {
	Type     string          `json:"type"` // TypeStart
	Workflow string          `json:"workflow"`
	Version  int             `json:"version,omitempty"` // 0: the workflow's current version
	ID       string          `json:"id"`
	Input    json.RawMessage `json:"input"` // a JSON object
}

// NewStart returns the start of request id of workflow (at version; 0 for
// the current one) with input.
func NewStart(workflow string, version int, id string, input json.RawMessage) Start {
	return Start{Type: TypeStart, Workflow: workflow, Version: version, ID: id, Input: input}
}

// Cancel asks for a running request to stop (cancel.schema.json); key: the
// id.
type Cancel struct {
	Type   string `json:"type"` // TypeCancel
	ID     string `json:"id"`
	Reason string `json:"reason,omitempty"`
	Run    int    `json:"run,omitempty"` // the run meant; 0: whatever runs
}

// NewCancel returns the cancel of request id, for reason (may be "").
func NewCancel(id, reason string) Cancel { return Cancel{Type: TypeCancel, ID: id, Reason: reason} }

// Retry asks for a failed or cancelled request to run again
// (retry.schema.json); key: the id.
type Retry struct {
	Type string `json:"type"` // TypeRetry
	ID   string `json:"id"`
	Run  int    `json:"run"`            // the run meant (Record.Run): a retry of another run is ignored
	From string `json:"from,omitempty"` // the top-level step to run again from; "": what did not succeed
}

// NewRetry returns the retry of run of request id, from step from (may be
// "").
func NewRetry(id string, run int, from string) Retry {
	return Retry{Type: TypeRetry, ID: id, Run: run, From: from}
}

// Request is what the processors decode a requests record into: a Start,
// a Cancel or a Retry, told apart by Type.
type Request struct {
	Type     string          `json:"type"`
	Workflow string          `json:"workflow"`
	Version  int             `json:"version"`
	ID       string          `json:"id"`
	Input    json.RawMessage `json:"input"`
	Reason   string          `json:"reason"`
	Run      int             `json:"run"`  // cancel, retry: the run meant
	From     string          `json:"from"` // retry: the step to run again from
	Name     string          `json:"name"` // signal: its name
	Step     string          `json:"step"` // signal: the step path it is for; "": every step waiting for Name
	Data     json.RawMessage `json:"data"` // signal: a JSON object
}

// StepError is the value of a result whose stepwise-status is StatusError
// (result-error.schema.json): a failure reported by a worker.
type StepError struct {
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

// CompletionStatus is the final status of a request.
type CompletionStatus string

const (
	Succeeded CompletionStatus = "succeeded"
	Failed    CompletionStatus = "failed"
	Cancelled CompletionStatus = "cancelled"
)

// Completion is written to the completions topic once per finished request
// (completion.schema.json); key: the id.
type Completion struct {
	Request   string           `json:"id"`
	Workflow  string           `json:"workflow"`
	Version   int              `json:"version,omitempty"` // the definition version it ran on
	Status    CompletionStatus `json:"status"`
	Output    json.RawMessage  `json:"output,omitempty"`
	Error     *Failure         `json:"error,omitempty"`
	Started   time.Time        `json:"started"`
	Finished  time.Time        `json:"finished"`
	Partition int32            `json:"-"` // where it was read; not on the wire
}

// Failure names where and why a request failed.
type Failure struct {
	Step    string `json:"step,omitempty"` // step path
	Attempt int    `json:"attempt,omitempty"`
	Message string `json:"message"`
}
