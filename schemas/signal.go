package schemas

import (
	"encoding/json"
	"time"
)

// Signal completes the steps of a request that wait for it
// (signal.schema.json); key: the request id. A step of the workflow
// (topology.Wait) waits for signals of Name; Data becomes its output.
type Signal struct {
	Type string `json:"type"` // TypeSignal
	ID   string `json:"id"`
	Name string `json:"name"`
	// Step is the step path the signal is for ("docs[2]/review"); "":
	// every step of the request waiting for Name, now or later.
	Step string          `json:"step,omitempty"`
	Data json.RawMessage `json:"data,omitempty"` // a JSON object; absent: {}
}

// NewSignal returns signal name for request id, for step (may be ""),
// with data (nil: {}).
func NewSignal(id, name, step string, data json.RawMessage) Signal {
	return Signal{Type: TypeSignal, ID: id, Name: name, Step: step, Data: data}
}

// MaxSignals bounds the signals one request keeps (Record.Signals);
// further ones are ignored.
const MaxSignals = 256

// ReceivedSignal is a signal as the request's record keeps it.
type ReceivedSignal struct {
	Name     string          `json:"name"`
	Step     string          `json:"step,omitempty"`
	Data     json.RawMessage `json:"data"`
	Received time.Time       `json:"received"`
}

// For reports whether the signal is for the step at path waiting for
// signal name.
func (s ReceivedSignal) For(name, path string) bool {
	return s.Name == name && (s.Step == "" || s.Step == path)
}

// appendSignals writes Record.Signals for EncodeRecord.
func appendSignals(b []byte, list []ReceivedSignal) []byte {
	if len(list) == 0 {
		return b
	}
	b = append(b, `,"signals":[`...)
	for i := range list {
		s := &list[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, s.Name)
		b = appendStringFieldOmit(b, "step", s.Step)
		b = append(b, `,"data":`...)
		b = append(b, s.Data...)
		b = appendTimeField(b, "received", s.Received)
		b = append(b, '}')
	}
	return append(b, ']')
}
