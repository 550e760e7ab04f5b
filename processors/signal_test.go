package processors

import (
	"encoding/json"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/processors/machine"
	"github.com/stepwise-run/stepwise/schemas"
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
