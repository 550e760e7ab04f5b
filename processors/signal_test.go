package processors

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/processors/machine"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
)

// A signal on the requests topic, as a plain Kafka producer writes it,
// becomes the machine's signal event.
func TestDecodeSignal(t *testing.T) {
	v, _ := json.Marshal(schemas.NewSignal("r-1", "review", "docs[2]/review", json.RawMessage(`{"label":"invoice"}`)))
	ev, problem, ok := decodeRequest(&kgo.Record{Key: []byte("r-1"), Value: v, Partition: 2})
	if !ok || problem != "" {
		t.Fatalf("decode: %q %v", problem, ok)
	}
	if ev.Kind != machine.EventSignal || ev.Request != "r-1" || ev.Signal != "review" || ev.Step != "docs[2]/review" ||
		string(ev.Output) != `{"label":"invoice"}` || ev.Partition != 2 {
		t.Fatalf("event %+v", ev)
	}
	ev, _, _ = decodeRequest(&kgo.Record{Key: []byte("r-1"), Value: []byte(`{"type":"signal","id":"r-1","name":"go"}`)})
	if ev.Kind != machine.EventSignal || ev.Output != nil || ev.Step != "" {
		t.Fatalf("signal without data: %+v", ev)
	}
}

// A heartbeat on the results topic becomes the machine's heartbeat event
// with its details; the task of a step with heartbeats states the
// interval in milliseconds.
func TestDecodeHeartbeat(t *testing.T) {
	r := &kgo.Record{Key: []byte("r-1"), Value: []byte(`{"details":{"page":3}}`), Headers: []kgo.RecordHeader{
		{Key: schemas.HeaderRequest, Value: []byte("r-1")}, {Key: schemas.HeaderStep, Value: []byte("ocr")},
		{Key: schemas.HeaderAttempt, Value: []byte("2")}, {Key: schemas.HeaderStatus, Value: []byte(schemas.StatusHeartbeat)},
	}}
	ev, problem := decodeResult(r)
	if problem != "" || ev.Kind != machine.EventHeartbeat || ev.Step != "ocr" || ev.Attempt != 2 || string(ev.Output) != `{"page":3}` {
		t.Fatalf("event %+v (%s)", ev, problem)
	}
	task := newEncoder(topology.DefaultPrefix, false).task(&machine.Dispatch{Queue: "ocr", Request: "r-1", Step: "ocr", Attempt: 1, Heartbeat: 10 * time.Second})
	if got := headerMap(task)[schemas.HeaderHeartbeat]; got != "10000" {
		t.Fatalf("heartbeat interval header %q", got)
	}
}
