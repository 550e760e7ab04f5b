package machine

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/schemas/schematest"
)

const timersYAML = `workflows:
  - name: nap
    steps:
      - name: a
      - name: nap
        depends: [a]
        sleep: 10m
      - name: b
        depends: [nap]
  - name: bounded
    deadline: 1h
    steps:
      - name: a
      - name: b
        depends: [a]
`

func TestSleepStepPassesItsInputOnWhenItsTimeHasPassed(t *testing.T) {
	h := newYAMLHarness(t, timersYAML)
	h.start("r", "nap", `{}`)
	start := h.now
	eff := h.ok(h.dispatched("a"), `{"x":1}`)
	if len(eff.Dispatches) != 0 || len(eff.SetTimers) != 1 || eff.SetTimers[0].Kind != TimerTimeout || !eff.SetTimers[0].At.Equal(start.Add(10*time.Minute)) {
		t.Fatalf("after a: dispatches %v, timers %+v; want no dispatch and a timer in 10m", eff.Dispatches, eff.SetTimers)
	}
	if tms := TimersOf(h.store["r"]); len(tms) != 1 || tms[0].Step != "nap" {
		t.Fatalf("timers of the record (restore): %+v", tms)
	}
	forged := Event{Kind: EventResult, Request: "r", Step: "nap", Attempt: 1, Output: []byte(`{}`)}
	if eff := h.apply(forged); eff.Reason != ReasonUnknownStep {
		t.Fatalf("result for a sleep step: %+v", eff)
	}
	h.fireDue()
	if !h.now.Equal(start.Add(10 * time.Minute)) {
		t.Fatalf("fired at %s", h.now)
	}
	jsonEq(t, "b's input", h.dispatched("b").Input, `{"x":1}`)
	if ss := h.store["r"].Steps["nap"]; ss.Status != schemas.StepSucceeded || !ss.Deadline.IsZero() {
		t.Fatalf("nap %+v", ss)
	}
}

func TestCancelOfASleepingRequest(t *testing.T) {
	h := newYAMLHarness(t, timersYAML)
	h.start("r", "nap", `{}`)
	h.ok(h.dispatched("a"), `{}`)
	eff := h.apply(Event{Kind: EventCancel, Request: "r"})
	if len(eff.Revokes) != 0 || h.store["r"].Steps["nap"].Status != schemas.StepCancelled {
		t.Fatalf("cancel: revokes %v, nap %+v", eff.Revokes, h.store["r"].Steps["nap"])
	}
	if eff := h.apply(Event{Kind: EventTimer, Request: "r", Step: "nap", Attempt: 1, Timer: TimerTimeout}); eff.Reason != ReasonFinishedRequest && eff.Reason != ReasonStaleTimer {
		t.Fatalf("the sleep's timer after the cancel: %+v", eff)
	}
	// A retry sleeps again.
	eff = h.retry("r", 1, "")
	if len(eff.SetTimers) == 0 || h.store["r"].Steps["nap"].Status != schemas.StepRunning {
		t.Fatalf("retry: %+v; nap %+v", eff.SetTimers, h.store["r"].Steps["nap"])
	}
}

func TestDeadlineFailsTheRunAndStopsItsTasks(t *testing.T) {
	h := newYAMLHarness(t, timersYAML)
	eff := h.start("r", "bounded", `{}`)
	start := h.now
	if root := h.store["r"]; !root.Deadline.Equal(start.Add(time.Hour)) {
		t.Fatalf("deadline %s", root.Deadline)
	}
	if len(eff.SetTimers) != 1 || eff.SetTimers[0].Kind != TimerDeadline || eff.SetTimers[0].Attempt != 1 {
		t.Fatalf("timers at start %+v", eff.SetTimers)
	}
	if tms := TimersOf(h.store["r"]); len(tms) != 1 || tms[0].Kind != TimerDeadline {
		t.Fatalf("timers of the record (restore): %+v", tms)
	}
	h.now = start.Add(30 * time.Minute)
	h.ok(h.dispatched("a"), `{}`)
	h.now = start.Add(time.Hour)
	eff = h.apply(Event{Kind: EventTimer, Request: "r", Attempt: 1, Timer: TimerDeadline})
	if len(eff.Completions) != 1 || eff.Completions[0].Status != schemas.Failed || eff.Completions[0].Error.Message != "deadline of 1h0m0s passed" {
		t.Fatalf("completion %+v", eff.Completions)
	}
	if len(eff.Revokes) != 1 || eff.Revokes[0].Step != "b" || !strings.Contains(eff.Revokes[0].Reason, "deadline") {
		t.Fatalf("revokes %+v; want b's task stopped", eff.Revokes)
	}
	// A retry has the whole deadline again; the old run's timer is stale.
	h.now = start.Add(2 * time.Hour)
	eff = h.retry("r", 1, "")
	if root := h.store["r"]; !root.Deadline.Equal(h.now.Add(time.Hour)) {
		t.Fatalf("deadline after the retry %s", root.Deadline)
	}
	if eff := h.apply(Event{Kind: EventTimer, Request: "r", Attempt: 1, Timer: TimerDeadline}); eff.Reason != ReasonStaleTimer {
		t.Fatalf("the first run's deadline in the second run: %+v", eff)
	}
	h.ok(h.dispatched("b"), `{}`)
	if c := h.completions; len(c) != 2 || c[1].Status != schemas.Succeeded {
		t.Fatalf("completions %+v", c)
	}
	if eff := h.apply(Event{Kind: EventTimer, Request: "r", Attempt: 2, Timer: TimerDeadline}); eff.Reason != ReasonStaleTimer {
		t.Fatalf("deadline of a succeeded request: %+v", eff)
	}
}

func TestDeadlineEarlyTimerIsStale(t *testing.T) {
	h := newYAMLHarness(t, timersYAML)
	h.start("r", "bounded", `{}`)
	if eff := h.apply(Event{Kind: EventTimer, Request: "r", Attempt: 1, Timer: TimerDeadline}); eff.Reason != ReasonStaleTimer {
		t.Fatalf("deadline before its time: %+v", eff)
	}
}

// The encoder writes the deadline as encoding/json does, and the schema
// accepts it.
func TestDeadlineEncodes(t *testing.T) {
	h := newYAMLHarness(t, timersYAML)
	h.start("r", "bounded", `{}`)
	got := schemas.EncodeRecord(h.store["r"])
	want, _ := json.Marshal(h.store["r"])
	var g, w any
	_ = json.Unmarshal(got, &g)
	_ = json.Unmarshal(want, &w)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("Encode differs from encoding/json:\n got  %s\n want %s", got, want)
	}
	schematest.Valid(t, "state-record.schema.json", got)
}
