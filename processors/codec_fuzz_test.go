package processors

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/definitions"
	"github.com/stepwise-run/stepwise/processors/machine"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
)

// fuzzYAML has the chain of the end-to-end tests and a fan-out, so fuzzed
// inputs and results reach both kinds of step.
const fuzzYAML = threeSteps + `
  - name: fan
    steps:
      - name: split
      - name: each
        task: per-item
        depends: [split]
      - name: join
        depends: [each]
    tasks:
      - name: per-item
        itemListKey: items
        steps:
          - name: work
`

// shell is the runtime's decode → machine → encode path over a map store,
// without Kafka: what a processor does with one record.
type shell struct {
	t     *testing.T
	m     *machine.Machine
	enc   *encoder
	store map[string]*schemas.Record
	now   time.Time
	tasks []*kgo.Record
}

func newShell(t *testing.T) *shell {
	set, err := topology.Parse("fuzz.yaml", []byte(fuzzYAML))
	if err != nil {
		t.Fatal(err)
	}
	return &shell{t: t, m: machine.New(definitions.FromSet(set), machine.WithMaxPayload(4096)), enc: newEncoder(topology.DefaultPrefix, false),
		store: map[string]*schemas.Record{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

type mapStore map[string]*schemas.Record

func (s mapStore) Get(key string) *schemas.Record { return s[key] }

// apply runs ev through the machine and encodes its effects, checking what
// the shell must guarantee whatever came in: every record it would
// produce is readable by its consumers (state records decode, tasks and
// completions are JSON, task inputs are objects), and everything is on
// the event's partition or a task topic.
func (s *shell) apply(ev machine.Event, part int32) machine.Effects {
	s.now = s.now.Add(time.Millisecond)
	eff := s.m.Apply(mapStore(s.store), ev, s.now)
	for _, r := range s.enc.records(part, &eff) {
		switch r.Topic {
		case s.enc.state:
			if r.Partition != part {
				s.t.Fatalf("state record on partition %d, event on %d", r.Partition, part)
			}
			if r.Value == nil {
				delete(s.store, string(r.Key))
				continue
			}
			rec, err := schemas.DecodeRecord(r.Value)
			if err != nil {
				s.t.Fatalf("state record %s does not decode: %v\n%s", r.Key, err, r.Value)
			}
			s.store[string(r.Key)] = rec
		case s.enc.completions:
			var c map[string]any
			if r.Partition != part || json.Unmarshal(r.Value, &c) != nil || c["id"] == nil || c["status"] == nil {
				s.t.Fatalf("completion on partition %d (event on %d) unreadable: %s", r.Partition, part, r.Value)
			}
		default:
			var in map[string]json.RawMessage
			if json.Unmarshal(r.Value, &in) != nil || in == nil {
				s.t.Fatalf("task %s has an input that is not a JSON object: %q", r.Topic, r.Value)
			}
			s.tasks = append(s.tasks, r)
		}
	}
	return eff
}

// FuzzDecodeRequest feeds arbitrary records of the requests topic to the
// shell. Decoding never panics; a record is dropped only when it names no
// request at all; anything else becomes an event that leaves readable
// records behind.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte("r-1"), []byte(`{"type":"start","workflow":"chain","id":"r-1","input":{"n":1}}`), int32(0))
	f.Add([]byte("r-2"), []byte(`{"type":"start","workflow":"fan","id":"r-2","input":{"items":[1,{"id":"6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab"}]}}`), int32(1))
	f.Add([]byte(""), []byte(`{"type":"cancel","id":"r-1","reason":"why"}`), int32(2))
	f.Add([]byte("k"), []byte(`{{{`), int32(0))
	f.Add([]byte(""), []byte(`nothing`), int32(0))
	f.Add([]byte("bad id"), []byte(`{"type":"start","workflow":"chain","input":[1]}`), int32(0))
	f.Add([]byte("x"), []byte(`{"type":"resume","workflow":"nope","input":{"a":"\u0000"}}`), int32(3))
	f.Fuzz(func(t *testing.T, key, value []byte, part int32) {
		r := &kgo.Record{Topic: topology.DefaultPrefix.Requests(), Key: key, Value: value, Partition: part}
		ev, problem, ok := decodeRequest(r)
		if !ok {
			var body struct{ ID string }
			_ = json.Unmarshal(value, &body)
			if len(key) != 0 || body.ID != "" || problem == "" {
				t.Fatalf("dropped a record naming a request (key %q, body %q) or without saying why (%q)", key, value, problem)
			}
			return
		}
		if ev.Request == "" || ev.Partition != part {
			t.Fatalf("event %+v from a record on partition %d", ev, part)
		}
		s := newShell(t)
		eff := s.apply(ev, part)
		// A start gets a state record or a completion saying why not:
		// never nothing, unless the id was known (here it never is).
		if ev.Kind == machine.EventStart && len(eff.Writes) == 0 && len(eff.Completions) == 0 {
			t.Fatalf("start %+v left neither state nor completion (ignored: %s)", ev, eff.Ignored)
		}
		if ev.Kind != machine.EventStart || s.store[ev.Request] == nil {
			return
		}
		if again := s.apply(ev, part); again.Reason != machine.ReasonDuplicateStart || len(again.Completions)+len(again.Dispatches)+len(again.Writes) != 0 {
			t.Fatalf("a repeated start of %q was not ignored as a duplicate: %+v", ev.Request, again)
		}
	})
}

// FuzzDecodeResult feeds an arbitrary result record (headers and value) to
// a processor holding a running request. Decoding never panics, and the
// records written because of it stay readable.
func FuzzDecodeResult(f *testing.F) {
	f.Add("a", "1", schemas.StatusOK, []byte(`{"items":[1,2]}`), int32(0), "r")
	f.Add("a", "1", schemas.StatusError, []byte(`{"message":"no","retryable":false}`), int32(0), "r")
	f.Add("a", "1", schemas.StatusError, []byte(`not json`), int32(0), "r")
	f.Add("a", "x", "weird", []byte(`{}`), int32(0), "")
	f.Add("split", "1", schemas.StatusOK, []byte(`{"items":"abc"}`), int32(1), "f")
	f.Add("split", "1", "", []byte(`{"items":[{"id":"6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab"},null]}`), int32(1), "f")
	f.Add("each[0]/work", "1", schemas.StatusOK, []byte(`{"item":5}`), int32(1), "f")
	f.Fuzz(func(t *testing.T, step, attempt, status string, value []byte, part int32, request string) {
		s := newShell(t)
		s.apply(machine.Event{Kind: machine.EventStart, Request: "r", Workflow: "chain", Input: json.RawMessage(`{"n":1}`), Partition: 0}, 0)
		s.apply(machine.Event{Kind: machine.EventStart, Request: "f", Workflow: "fan", Input: json.RawMessage(`{}`), Partition: 1}, 1)
		rec := &kgo.Record{Topic: topology.DefaultPrefix.Results(), Key: []byte(request), Value: value, Partition: part,
			Headers: []kgo.RecordHeader{
				{Key: schemas.HeaderStep, Value: []byte(step)},
				{Key: schemas.HeaderAttempt, Value: []byte(attempt)},
				{Key: schemas.HeaderStatus, Value: []byte(status)},
				{Key: schemas.HeaderWorker, Value: []byte("host/1")},
			}}
		if request != "" {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: schemas.HeaderRequest, Value: []byte(request)})
		}
		ev, problem := decodeResult(rec)
		if ev.Kind != machine.EventResult || ev.Partition != part || ev.Step != step || ev.Worker != "host/1" {
			t.Fatalf("result decoded as %+v", ev)
		}
		if _, err := strconv.Atoi(attempt); (err != nil) != (problem != "") {
			t.Fatalf("attempt %q: problem %q", attempt, problem)
		}
		if (ev.Output == nil) == (ev.Error == nil) {
			t.Fatalf("result with status %q has output %q and error %+v: want exactly one", status, ev.Output, ev.Error)
		}
		s.apply(ev, part)
		// Feed the workers' answers to whatever was dispatched, once, so
		// that a fan-out's children and join see the fuzzed output.
		for _, task := range s.tasks {
			answer := parseTask(task)
			reply := okResult(answer, nil)
			ev, _ := decodeResult(reply)
			s.apply(ev, reply.Partition)
		}
	})
}
