package processors

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/processors/machine"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/tracing"
)

// decodeRequest turns a requests record into an event. Malformed bodies
// still become events the machine answers (a start of unknown workflow or
// invalid input fails the request with a completion saying why), so a bad
// record never stalls its partition. ok is false only when the record names
// no request at all; there is then nobody to answer.
func decodeRequest(r *kgo.Record) (ev machine.Event, problem string, ok bool) {
	ev, problem, ok = decodeRequestBody(r)
	if ok && ev.Kind == machine.EventStart {
		for _, h := range r.Headers {
			if h.Key == schemas.HeaderTraceparent {
				if tp := string(h.Value); tracing.Valid(tp) {
					ev.Trace = tp
				}
			}
		}
	}
	return ev, problem, ok
}

func decodeRequestBody(r *kgo.Record) (ev machine.Event, problem string, ok bool) {
	var body schemas.Request
	err := json.Unmarshal(r.Value, &body)
	id := body.ID
	if id == "" {
		id = string(r.Key)
	}
	if id == "" {
		if err != nil {
			return ev, "request is not JSON and has no key: " + err.Error(), false
		}
		return ev, "request names no id and has no key", false
	}
	switch {
	case err != nil:
		// Unreadable: answer as a start whose input is what was sent;
		// a duplicate of a known id is ignored, a new id fails with
		// "invalid input".
		return machine.Event{Kind: machine.EventStart, Request: id, Workflow: body.Workflow,
			Input: json.RawMessage(r.Value), Partition: r.Partition}, "request is not a JSON object: " + err.Error(), true
	case body.Type == schemas.TypeCancel:
		return machine.Event{Kind: machine.EventCancel, Request: id, Reason: body.Reason, Run: body.Run, Partition: r.Partition}, "", true
	case body.Type == schemas.TypeRetry:
		return machine.Event{Kind: machine.EventRetry, Request: id, Run: body.Run, From: body.From, Partition: r.Partition}, "", true
	case body.Type == schemas.TypeSignal:
		return machine.Event{Kind: machine.EventSignal, Request: id, Signal: body.Name, Step: body.Step, Output: body.Data, Partition: r.Partition}, "", true
	case body.Type == schemas.TypeStart:
		return machine.Event{Kind: machine.EventStart, Request: id, Workflow: body.Workflow, Version: body.Version,
			Input: body.Input, Partition: r.Partition}, "", true
	default:
		ev := machine.Event{Kind: machine.EventStart, Request: id, Workflow: body.Workflow, Input: body.Input, Partition: r.Partition}
		return ev, fmt.Sprintf("request type %q is not start, cancel, retry or signal; handled as a start", body.Type), true
	}
}

// decodeResult turns a results record into an event. A result that names
// no step or attempt is still passed on: the machine ignores it as stale.
func decodeResult(r *kgo.Record) (machine.Event, string) {
	ev := machine.Event{Kind: machine.EventResult, Partition: r.Partition}
	var status, attempt string
	for _, h := range r.Headers {
		switch h.Key {
		case schemas.HeaderRequest:
			ev.Request = string(h.Value)
		case schemas.HeaderStep:
			ev.Step = string(h.Value)
		case schemas.HeaderAttempt:
			attempt = string(h.Value)
		case schemas.HeaderStatus:
			status = string(h.Value)
		case schemas.HeaderWorker:
			ev.Worker = string(h.Value)
		}
	}
	if ev.Request == "" {
		ev.Request = string(r.Key)
	}
	var problem string
	if n, err := strconv.Atoi(attempt); err == nil {
		ev.Attempt = n
	} else {
		problem = fmt.Sprintf("bad %s header %q", schemas.HeaderAttempt, attempt)
	}
	switch status {
	case schemas.StatusOK, "":
		ev.Output = json.RawMessage(r.Value) // the machine checks it is an object
	case schemas.StatusHeartbeat:
		ev.Kind = machine.EventHeartbeat
		var hb struct {
			Details json.RawMessage `json:"details"`
		}
		if json.Unmarshal(r.Value, &hb) == nil {
			ev.Output = hb.Details // the machine keeps it when it is a small object
		}
	case schemas.StatusError:
		var se schemas.StepError
		if err := json.Unmarshal(r.Value, &se); err != nil || se.Message == "" {
			se = schemas.StepError{Message: fmt.Sprintf("worker reported an error with an unreadable body: %.200q", r.Value), Retryable: true}
		}
		ev.Error = &se
	default:
		ev.Error = &schemas.StepError{Message: fmt.Sprintf("worker sent unknown %s %q", schemas.HeaderStatus, status), Retryable: true}
	}
	return ev, problem
}

// deadlineFormat is RFC 3339 with milliseconds, which every language's
// standard parser reads.
const deadlineFormat = "2006-01-02T15:04:05.000Z07:00"

// encoder builds the records of a transition's effects. Topic names are
// built once: every event needs them.
type encoder struct {
	state, completions, results string
	tasks                       map[string]string // queue -> topic; filled as queues are seen (loop only)
	prefix                      topology.Prefix
	// tracing: tasks carry the span of their attempt (the processor
	// emits it), else the request's trace context as it came.
	tracing bool
}

func newEncoder(p topology.Prefix, tracing bool) *encoder {
	return &encoder{state: p.State(), completions: p.Completions(), results: p.Results(), tasks: map[string]string{}, prefix: p, tracing: tracing}
}

func (e *encoder) tasksTopic(queue string) string {
	t, ok := e.tasks[queue]
	if !ok {
		t = e.prefix.Tasks(queue)
		e.tasks[queue] = t
	}
	return t
}

// records returns every record of eff, state writes first, for home
// partition part.
func (e *encoder) records(part int32, eff *machine.Effects) []*kgo.Record {
	out := make([]*kgo.Record, 0, len(eff.Writes)+len(eff.Dispatches)+len(eff.Completions))
	for _, w := range eff.Writes {
		r := &kgo.Record{Topic: e.state, Partition: part, Key: []byte(w.Key)}
		if w.Record != nil {
			r.Value = schemas.EncodeRecord(w.Record)
		}
		out = append(out, r)
	}
	for i := range eff.Dispatches {
		out = append(out, e.task(&eff.Dispatches[i]))
	}
	for i := range eff.Revokes {
		out = append(out, e.revoke(&eff.Revokes[i]))
	}
	for i := range eff.Completions {
		c := &eff.Completions[i]
		v, err := json.Marshal(c)
		if err != nil {
			// Output was checked to be JSON before it was stored.
			panic(fmt.Sprintf("stepwise: encode completion: %v", err))
		}
		out = append(out, &kgo.Record{Topic: e.completions, Partition: part, Key: []byte(c.Request), Value: v})
	}
	return out
}

// task builds the task message of one dispatch (PROTOCOL.md, tasks.<queue>).
// Its partition is left to the key hash: task topics may have any count.
func (e *encoder) task(d *machine.Dispatch) *kgo.Record {
	h := []kgo.RecordHeader{
		{Key: schemas.HeaderRequest, Value: []byte(d.Request)},
		{Key: schemas.HeaderWorkflow, Value: []byte(d.Workflow)},
		{Key: schemas.HeaderStep, Value: []byte(d.Step)},
		{Key: schemas.HeaderAttempt, Value: []byte(strconv.Itoa(d.Attempt))},
		{Key: schemas.HeaderInstance, Value: []byte(d.Instance)},
		{Key: schemas.HeaderReplyTopic, Value: []byte(e.results)},
		{Key: schemas.HeaderReplyPartition, Value: []byte(strconv.Itoa(int(d.Partition)))},
	}
	if !d.Deadline.IsZero() {
		h = append(h, kgo.RecordHeader{Key: schemas.HeaderDeadline, Value: []byte(d.Deadline.UTC().Format(deadlineFormat))})
	}
	if d.Heartbeat > 0 {
		h = append(h, kgo.RecordHeader{Key: schemas.HeaderHeartbeat, Value: []byte(strconv.FormatInt(max(d.Heartbeat.Milliseconds(), 1), 10))})
	}
	if d.Trace != "" {
		tp := d.Trace
		if e.tracing {
			tp = tracing.AttemptParent(d.Trace, d.Step, d.Attempt)
		}
		if tp != "" {
			h = append(h, kgo.RecordHeader{Key: schemas.HeaderTraceparent, Value: []byte(tp)})
		}
	}
	return &kgo.Record{Topic: e.tasksTopic(d.Queue), Key: []byte(d.Request), Value: d.Input, Headers: h}
}

// revokeBody is the value of a cancel control message (cancel-task.schema.json).
type revokeBody struct {
	Reason string `json:"reason,omitempty"`
}

// revoke builds the cancel control message of a task (PROTOCOL.md,
// tasks.<queue>): the task's key, so it lands on the task's partition
// after it, and the task's request, step and attempt headers.
func (e *encoder) revoke(r *machine.Revoke) *kgo.Record {
	v, _ := json.Marshal(revokeBody{Reason: r.Reason})
	return &kgo.Record{Topic: e.tasksTopic(r.Queue), Key: []byte(r.Request), Value: v, Headers: []kgo.RecordHeader{
		{Key: schemas.HeaderControl, Value: []byte(schemas.ControlCancel)},
		{Key: schemas.HeaderRequest, Value: []byte(r.Request)},
		{Key: schemas.HeaderWorkflow, Value: []byte(r.Workflow)},
		{Key: schemas.HeaderStep, Value: []byte(r.Step)},
		{Key: schemas.HeaderAttempt, Value: []byte(strconv.Itoa(r.Attempt))},
	}}
}

// recordSize approximates a record's size on the wire: payload plus a
// generous allowance for the record and batch framing.
func recordSize(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value) + 128
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 8
	}
	return n
}

// timerEvent is the event of a due timer of partition part.
func timerEvent(t machine.Timer, part int32) machine.Event {
	return machine.Event{Kind: machine.EventTimer, Request: t.Request, Step: t.Step, Attempt: t.Attempt, Timer: t.Kind, Partition: part}
}

// homePartitioner places state and completion records on the partition set
// on the record (the request's home partition) and hashes the key, as
// every Kafka client does by default, for everything else (task topics,
// whose partition counts are free).
type homePartitioner struct {
	prefix topology.Prefix
	hashed kgo.Partitioner
}

func newHomePartitioner(p topology.Prefix) kgo.Partitioner {
	return homePartitioner{prefix: p, hashed: kgo.StickyKeyPartitioner(nil)}
}

func (hp homePartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if topic == hp.prefix.State() || topic == hp.prefix.Completions() {
		return kgo.ManualPartitioner().ForTopic(topic)
	}
	return hp.hashed.ForTopic(topic)
}
