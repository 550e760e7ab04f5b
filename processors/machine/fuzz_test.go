package machine

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
)

// FuzzApply feeds arbitrary event sequences, payloads included, to the
// example workflows. The machine must never panic, never complete a request
// twice and never dispatch for a finished request.
func FuzzApply(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 2, 1, 3, 0}, `{"sections":[1,2],"documents":[{"n":1}],"pages":[1]}`)
	f.Add([]byte{0, 1, 4, 4, 4, 5, 6, 2}, `{}`)
	f.Add([]byte{0, 2, 1, 1, 1, 1, 7, 7, 7}, `not json`)
	f.Add([]byte{0, 4, 1, 0, 8, 4, 9, 0, 9, 0, 4, 0, 8, 4}, `{"ok":true}`)
	f.Fuzz(func(t *testing.T, ops []byte, payload string) {
		h := newHarness(t, linear3(), wordCounts(), nestedIDP(), approval())
		workflows := []string{"linear3", "book-word-counts", "idp", "unknown", "approval"}
		done := map[string]int{}
		apply := func(ev Event) {
			eff := h.apply(ev)
			for _, d := range eff.Dispatches {
				if done[d.Request] > 0 {
					t.Fatalf("dispatch of %s after %s completed", d.Step, d.Request)
				}
			}
			for _, c := range eff.Completions {
				if done[c.Request]++; done[c.Request] > 1 {
					t.Fatalf("%s completed twice", c.Request)
				}
			}

		}
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%10, int(ops[i+1])
			req := fmt.Sprintf("r%d", arg%3)
			pick := func() (Dispatch, bool) {
				if len(h.dispatches) == 0 {
					return Dispatch{}, false
				}
				return h.dispatches[arg%len(h.dispatches)], true
			}
			switch op {
			case 0:
				apply(Event{Kind: EventStart, Request: req, Workflow: workflows[arg%len(workflows)], Input: json.RawMessage(payload)})
			case 1, 2:
				if d, ok := pick(); ok {
					apply(Event{Kind: EventResult, Request: d.Request, Step: d.Step, Attempt: d.Attempt, Output: json.RawMessage(payload)})
				}
			case 3:
				if d, ok := pick(); ok {
					apply(Event{Kind: EventResult, Request: d.Request, Step: d.Step, Attempt: d.Attempt, Error: &schemas.StepError{Message: payload, Retryable: arg%2 == 0}})
				}
			case 4:
				h.fireDue()
				for req := range done {
					if h.store[req] == nil {
						delete(done, req) // expired: the id may be used again
					}
				}
			case 5:
				apply(Event{Kind: EventCancel, Request: req, Reason: payload})
			case 6:
				apply(Event{Kind: EventResult, Request: req, Step: payload, Attempt: arg, Output: json.RawMessage(`{}`)})
			case 7:
				apply(Event{Kind: EventTimer, Request: req, Step: payload, Attempt: arg % 4, Timer: TimerKind(arg % 8)})
			case 8:
				step := ""
				if arg%2 == 1 {
					step = "approve"
				}
				apply(Event{Kind: EventSignal, Request: req, Signal: []string{"approve", "other"}[arg%4/2], Step: step, Output: json.RawMessage(payload)})
			case 9:
				if d, ok := pick(); ok {
					apply(Event{Kind: EventHeartbeat, Request: d.Request, Step: d.Step, Attempt: d.Attempt, Output: json.RawMessage(payload)})
				}
			}
		}
	})
}

// approval is a workflow with the steps that are not dispatched or that
// beat: "work" with a heartbeat timeout, then "approve" waiting for a
// signal (with a timeout to a default), then "after".
func approval() *topology.Workflow {
	g := graph(nil, fastRetry, "work", "approve<-work", "after<-approve")
	g.ByName["work"].HeartbeatTimeout = 3 * time.Second
	g.ByName["approve"].Queue = ""
	g.ByName["approve"].Wait = &topology.Wait{Signal: "approve", Timeout: time.Minute, OnTimeout: json.RawMessage(`{"approved":false}`)}
	return &topology.Workflow{Name: "approval", Graph: g}
}

// FuzzDecode: any bytes read back from the state topic decode or fail with
// an error, never a panic, and a decoded record re-encodes.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"v":1,"request":"r","workflow":"w","status":"running","steps":{"a":{"status":"running","attempt":1}}}`))
	f.Add([]byte(`{"v":9}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := schemas.DecodeRecord(b)
		if err != nil {
			return
		}
		if _, err := schemas.DecodeRecord(schemas.EncodeRecord(r)); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		_ = TimersOf(r)
	})
}
