package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/schemas"
)

// Task is one attempt of one step, as delivered to a Handler. Handlers must
// not modify it.
type Task struct {
	Request  string    // request id
	Workflow string    // workflow name
	Step     string    // step path: "ocr", or "docs[1]/pages[7]/ocr" inside fan-outs
	Attempt  int       // from 1
	Instance string    // graph instance: the request id, or the fan-out child's id
	Deadline time.Time // zero when the step has no timeout; also the handler context's deadline
	Queue    string    // the queue it was consumed from

	// Input is the step's input, a JSON object: the merge of the outputs of
	// the steps it depends on.
	Input json.RawMessage

	// Headers holds every header of the task record, Stepwise's and any
	// other (tracing, for instance). A repeated header keeps its last value.
	Headers map[string]string

	// Where the task was read from, for logs.
	Topic     string
	Partition int32
	Offset    int64

	beatEvery time.Duration // heartbeat.go
	beat      *beater       // set while the handler runs, when beatEvery > 0
}

// Decode unmarshals the task's input into v, as json.Unmarshal does. Wrap
// its error with Permanent when an input that does not fit v can never
// succeed.
func (t *Task) Decode(v any) error {
	if err := json.Unmarshal(t.Input, v); err != nil {
		return fmt.Errorf("stepwise: decode input of step %s: %w", t.Step, err)
	}
	return nil
}

// JSON encodes v as a step's output: a handler ends with
// `return worker.JSON(out)`. v must encode to a JSON object (a struct or a
// map); anything else becomes a retryable error result.
func JSON(v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("stepwise: encode output: %w", err)
	}
	return b, nil
}

// reply is where and under which correlation a result goes. It is
// complete only when the task named all of it; without it there is nothing
// a worker can answer.
type reply struct {
	topic     string
	partition int32
	request   string
	step      string
	attempt   string // copied verbatim, even when unparsable
	worker    string // this worker's id (HeaderWorker)
}

var (
	errNoReply   = errors.New("stepwise: task has no usable reply headers; dropped without a result")
	errMalformed = errors.New("stepwise: malformed task")
)

// parseTask reads a task record. It returns the reply first: when that
// fails (errNoReply) nothing can be answered; when the reply is known but
// the rest is malformed, the error (wrapping errMalformed) is answered as
// a permanent failure.
func parseTask(rec *kgo.Record, queue string) (*reply, *Task, error) {
	h := make(map[string]string, len(rec.Headers))
	for _, x := range rec.Headers {
		h[x.Key] = string(x.Value)
	}
	r := &reply{
		topic:   h[schemas.HeaderReplyTopic],
		request: h[schemas.HeaderRequest],
		step:    h[schemas.HeaderStep],
		attempt: h[schemas.HeaderAttempt],
	}
	partition, err := strconv.ParseInt(h[schemas.HeaderReplyPartition], 10, 32)
	switch {
	case r.topic == "":
		return nil, nil, fmt.Errorf("%w: missing %s", errNoReply, schemas.HeaderReplyTopic)
	case err != nil || partition < 0:
		return nil, nil, fmt.Errorf("%w: %s %q is not a partition number", errNoReply, schemas.HeaderReplyPartition, h[schemas.HeaderReplyPartition])
	case r.request == "" || r.step == "" || r.attempt == "":
		return nil, nil, fmt.Errorf("%w: missing one of %s, %s, %s", errNoReply, schemas.HeaderRequest, schemas.HeaderStep, schemas.HeaderAttempt)
	}
	r.partition = int32(partition)

	t := &Task{
		Request:   r.request,
		Workflow:  h[schemas.HeaderWorkflow],
		Step:      r.step,
		Instance:  h[schemas.HeaderInstance],
		Queue:     queue,
		Input:     rec.Value,
		Headers:   h,
		Topic:     rec.Topic,
		Partition: rec.Partition,
		Offset:    rec.Offset,
	}
	attempt, err := strconv.Atoi(r.attempt)
	if err != nil || attempt < 1 {
		return r, t, fmt.Errorf("%w: %s %q is not an attempt number", errMalformed, schemas.HeaderAttempt, r.attempt)
	}
	t.Attempt = attempt
	t.beatEvery = heartbeatInterval(h)
	if d, ok := h[schemas.HeaderDeadline]; ok {
		if t.Deadline, err = time.Parse(time.RFC3339Nano, d); err != nil {
			return r, t, fmt.Errorf("%w: %s %q is not an RFC 3339 time", errMalformed, schemas.HeaderDeadline, d)
		}
	}
	if !isObject(rec.Value) {
		return r, t, fmt.Errorf("%w: the value is not a JSON object (%s)", errMalformed, describe(rec.Value))
	}
	return r, t, nil
}

// isObject reports whether b is valid JSON whose top level is an object.
func isObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{' && json.Valid(b)
}

// describe names what a non-object value is, for error messages.
func describe(b []byte) string {
	t := bytes.TrimSpace(b)
	switch {
	case len(t) == 0:
		return "empty"
	case !json.Valid(t):
		return "not JSON"
	case t[0] == '[':
		return "an array"
	case t[0] == '"':
		return "a string"
	case t[0] == 'n':
		return "null"
	case t[0] == 't' || t[0] == 'f':
		return "a boolean"
	default:
		return "a number"
	}
}
