package machine

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/definitions"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/schemas/schematest"
	"github.com/stepwise-run/stepwise/topology"
)

// reviewYAML is a workflow with a wait step at the top level and one in a
// fan-out task.
const reviewYAML = `workflows:
  - name: review
    steps:
      - name: classify
      - name: review
        depends: [classify]
        wait: {signal: review, timeout: 1h}
      - name: store
        depends: [review]
  - name: defaulted
    steps:
      - name: classify
      - name: review
        depends: [classify]
        wait: {signal: review, timeout: 1h, onTimeout: {output: {label: unknown}}}
      - name: store
        depends: [review]
  - name: patient
    steps:
      - name: review
        retry: {maxAttempts: 2, initial: 10s}
        wait: {signal: review, timeout: 1h}
      - name: store
        depends: [review]
  - name: docs
    steps:
      - name: split
      - name: docs
        task: doc
        depends: [split]
    tasks:
      - name: doc
        itemListKey: docs
        steps:
          - name: check
            wait: {signal: ok}
          - name: store
            depends: [check]
`

func newYAMLHarness(t *testing.T, src string) *harness {
	t.Helper()
	set, err := topology.Parse("review.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	h.m = New(definitions.FromSet(set))
	return h
}

func (h *harness) signal(id, name, step, data string) Effects {
	ev := Event{Kind: EventSignal, Request: id, Signal: name, Step: step}
	if data != "" {
		ev.Output = json.RawMessage(data)
	}
	return h.apply(ev)
}

func TestSignalCompletesTheWaitingStep(t *testing.T) {
	h := newYAMLHarness(t, reviewYAML)
	h.start("r", "review", `{}`)
	eff := h.ok(h.dispatched("classify"), `{"label":"invoice","confidence":0.2}`)
	if len(eff.Dispatches) != 0 {
		t.Fatalf("a wait step was dispatched: %+v", eff.Dispatches)
	}
	ss := h.store["r"].Steps["review"]
	if ss.Status != schemas.StepRunning || ss.Attempt != 1 || !ss.Deadline.Equal(h.now.Add(time.Hour)) {
		t.Fatalf("review: %+v; want running, attempt 1, deadline in 1h", ss)
	}
	h.now = h.now.Add(time.Minute)
	eff = h.signal("r", "review", "", `{"label":"receipt"}`)
	if eff.Ignored != "" || len(eff.Dispatches) != 1 || eff.Dispatches[0].Step != "store" {
		t.Fatalf("signal: %+v", eff)
	}
	jsonEq(t, "store input", eff.Dispatches[0].Input, `{"label":"receipt"}`)
	if len(eff.ClearTimers) != 1 || eff.ClearTimers[0].Kind != TimerTimeout {
		t.Errorf("cleared %+v; want the wait's timeout", eff.ClearTimers)
	}
	if got := h.store["r"].Signals; len(got) != 1 || got[0].Name != "review" || !got[0].Received.Equal(h.now) {
		t.Errorf("kept signals %+v", got)
	}
	h.ok(h.dispatched("store"), `{"stored":true}`)
	if len(h.completions) != 1 || h.completions[0].Status != schemas.Succeeded {
		t.Fatalf("completions %+v", h.completions)
	}
}

func TestEarlySignalIsKeptUntilTheStepWaits(t *testing.T) {
	h := newYAMLHarness(t, reviewYAML)
	h.start("r", "review", `{}`)
	if eff := h.signal("r", "review", "", `{"label":"early"}`); eff.Ignored != "" || len(eff.Writes) != 1 {
		t.Fatalf("early signal: %+v", eff)
	}
	eff := h.ok(h.dispatched("classify"), `{"label":"invoice"}`)
	if len(eff.Dispatches) != 1 || eff.Dispatches[0].Step != "store" {
		t.Fatalf("after classify: %+v; want review to take the kept signal and store to be dispatched", eff.Dispatches)
	}
	jsonEq(t, "store input", eff.Dispatches[0].Input, `{"label":"early"}`)
	if len(eff.SetTimers) != 0 {
		t.Errorf("timers %+v: a step that found its signal sets no timeout", eff.SetTimers)
	}
}

func TestDuplicateSignalFirstWins(t *testing.T) {
	h := newYAMLHarness(t, reviewYAML)
	h.start("r", "review", `{}`)
	h.signal("r", "review", "", `{"n":1}`)
	before := len(h.store["r"].Signals)
	eff := h.signal("r", "review", "", `{"n":2}`)
	if eff.Reason != ReasonDuplicateSignal || len(eff.Writes) != 0 || !strings.Contains(eff.Ignored, "the first wins") {
		t.Fatalf("duplicate: %+v", eff)
	}
	if len(h.store["r"].Signals) != before {
		t.Fatal("a duplicate was kept")
	}
	h.ok(h.dispatched("classify"), `{}`)
	jsonEq(t, "store input", h.dispatched("store").Input, `{"n":1}`)
	// A duplicate after the step took the first one changes nothing either.
	if eff := h.signal("r", "review", "", `{"n":3}`); eff.Reason != ReasonDuplicateSignal {
		t.Fatalf("late duplicate: %+v", eff)
	}
}

func TestSignalsIgnored(t *testing.T) {
	h := newYAMLHarness(t, reviewYAML)
	h.start("r", "review", `{}`)
	h.start("done", "review", `{}`)
	h.apply(Event{Kind: EventCancel, Request: "done"})
	for _, tc := range []struct {
		what, id, name, step, data, why string
	}{
		{"unknown request", "nope", "review", "", "", "signal for an unknown request"},
		{"finished request", "done", "review", "", "", "signal for a request already cancelled"},
		{"no step waits", "r", "approve", "", "", `no step of workflow "review" waits for signal "approve"`},
		{"step waits for another", "r", "review", "classify", "", `step classify of workflow "review" does not wait for signal "review"`},
		{"unknown step", "r", "review", "nope", "", `step nope of workflow "review" does not wait for signal "review"`},
		{"bad path", "r", "review", "x/review", "", `invalid step path "x/review"`},
		{"bad name", "r", "re view", "", "", `invalid signal name "re view"`},
		{"data not an object", "r", "review", "", `[1]`, `signal "review": data not a JSON object`},
	} {
		eff := h.signal(tc.id, tc.name, tc.step, tc.data)
		if eff.Reason != ReasonSignalIgnored || eff.Ignored != tc.why || len(eff.Writes) != 0 {
			t.Errorf("%s: %q (%s), want %q", tc.what, eff.Ignored, eff.Reason, tc.why)
		}
	}
}

func TestSignalWithoutDataIsTheEmptyObject(t *testing.T) {
	h := newYAMLHarness(t, reviewYAML)
	h.start("r", "review", `{}`)
	h.ok(h.dispatched("classify"), `{"label":"x"}`)
	h.signal("r", "review", "review", "")
	jsonEq(t, "store input", h.dispatched("store").Input, `{}`)
}

func TestWaitTimeoutFailsTheRequest(t *testing.T) {
	h := newYAMLHarness(t, reviewYAML)
	h.start("r", "review", `{}`)
	h.ok(h.dispatched("classify"), `{}`)
	h.fireDue()
	c := h.completions
	if len(c) != 1 || c[0].Status != schemas.Failed || c[0].Error.Step != "review" ||
		c[0].Error.Message != `no signal "review" within 1h0m0s (attempt 1 of 1)` {
		t.Fatalf("completions %+v", c)
	}
	if eff := h.signal("r", "review", "", ""); eff.Reason != ReasonSignalIgnored {
		t.Fatalf("signal after the failure: %+v", eff)
	}
}

func TestWaitTimeoutTakesOnTimeoutOutput(t *testing.T) {
	h := newYAMLHarness(t, reviewYAML)
	h.start("r", "defaulted", `{}`)
	h.ok(h.dispatched("classify"), `{"label":"invoice"}`)
	h.fireDue()
	d := h.dispatched("store")
	jsonEq(t, "store input", d.Input, `{"label":"unknown"}`)
	if ss := h.store["r"].Steps["review"]; ss.Status != schemas.StepSucceeded || ss.Attempt != 1 {
		t.Fatalf("review %+v", ss)
	}
	// The signal after the timeout is kept (first of its name) but no
	// step waits: nothing else changes.
	if eff := h.signal("r", "review", "", `{"label":"late"}`); len(eff.Dispatches) != 0 || eff.Ignored != "" {
		t.Fatalf("late signal: %+v", eff)
	}
}

func TestWaitRetriesAndASignalBetweenAttemptsCompletesIt(t *testing.T) {
	h := newYAMLHarness(t, reviewYAML)
	h.start("r", "patient", `{}`)
	h.fireDue() // the first attempt times out
	ss := h.store["r"].Steps["review"]
	if ss.Status != schemas.StepWaiting || ss.RetryAt.IsZero() {
		t.Fatalf("after the first timeout: %+v", ss)
	}
	eff := h.signal("r", "review", "", `{"ok":true}`)
	if len(eff.Dispatches) != 1 || eff.Dispatches[0].Step != "store" {
		t.Fatalf("signal between attempts: %+v", eff)
	}
	if len(eff.ClearTimers) != 1 || eff.ClearTimers[0].Kind != TimerRetry {
		t.Errorf("cleared %+v; want the retry timer", eff.ClearTimers)
	}
	// The retry timer, if it fires anyway, is stale.
	if eff := h.apply(Event{Kind: EventTimer, Request: "r", Step: "review", Attempt: 1, Timer: TimerRetry}); eff.Reason != ReasonStaleTimer {
		t.Fatalf("retry timer after the signal: %+v", eff)
	}
}

func TestWaitSecondAttemptWaitsAgain(t *testing.T) {
	h := newYAMLHarness(t, reviewYAML)
	h.start("r", "patient", `{}`)
	h.fireDue() // attempt 1 times out
	h.fireDue() // backoff over: attempt 2 waits
	ss := h.store["r"].Steps["review"]
	if ss.Status != schemas.StepRunning || ss.Attempt != 2 || ss.Deadline.IsZero() || len(ss.Earlier) != 1 {
		t.Fatalf("attempt 2: %+v", ss)
	}
	if tms := TimersOf(h.store["r"]); len(tms) != 1 || tms[0].Kind != TimerTimeout || tms[0].Attempt != 2 {
		t.Fatalf("timers of the record (restore): %+v", tms)
	}
	h.fireDue()
	if c := h.completions; len(c) != 1 || !strings.HasSuffix(c[0].Error.Message, "(attempt 2 of 2)") {
		t.Fatalf("completions %+v", c)
	}
}

func TestWaitStepTakesNoResultAndNoRevoke(t *testing.T) {
	h := newYAMLHarness(t, reviewYAML)
	h.start("r", "review", `{}`)
	h.ok(h.dispatched("classify"), `{}`)
	forged := Event{Kind: EventResult, Request: "r", Step: "review", Attempt: 1, Output: json.RawMessage(`{}`)}
	if eff := h.apply(forged); eff.Reason != ReasonUnknownStep {
		t.Fatalf("result for a wait step: %+v", eff)
	}
	eff := h.apply(Event{Kind: EventCancel, Request: "r"})
	if len(eff.Revokes) != 0 {
		t.Fatalf("revokes %+v: a wait step has no task to revoke", eff.Revokes)
	}
	if ss := h.store["r"].Steps["review"]; ss.Status != schemas.StepCancelled {
		t.Fatalf("review after cancel: %+v", ss)
	}
}

func TestSignalToFanOutChildren(t *testing.T) {
	h := newYAMLHarness(t, reviewYAML)
	h.start("r", "docs", `{}`)
	// Early, for child 2 only, before any child exists.
	h.signal("r", "ok", "docs[2]/check", `{"who":"two"}`)
	eff := h.ok(h.dispatched("split"), `{"docs":["a","b","c"]}`)
	if len(eff.Dispatches) != 1 || eff.Dispatches[0].Step != "docs[2]/store" {
		t.Fatalf("after split: %v; want only child 2 (it had its signal) to go on", eff.Dispatches)
	}
	jsonEq(t, "child 2 store input", eff.Dispatches[0].Input, `{"who":"two"}`)
	// For child 0 only.
	eff = h.signal("r", "ok", "docs[0]/check", `{"who":"zero"}`)
	if len(eff.Dispatches) != 1 || eff.Dispatches[0].Step != "docs[0]/store" {
		t.Fatalf("addressed signal: %v", eff.Dispatches)
	}
	// For every child still waiting: child 1.
	eff = h.signal("r", "ok", "", `{"who":"all"}`)
	if len(eff.Dispatches) != 1 || eff.Dispatches[0].Step != "docs[1]/store" {
		t.Fatalf("signal for all: %v", eff.Dispatches)
	}
	jsonEq(t, "child 1 store input", eff.Dispatches[0].Input, `{"who":"all"}`)
	for _, s := range []string{"docs[0]/store", "docs[1]/store", "docs[2]/store"} {
		h.ok(h.dispatched(s), `{"doc":"`+s+`"}`)
	}
	if c := h.completions; len(c) != 1 || c[0].Status != schemas.Succeeded {
		t.Fatalf("completions %+v", c)
	}
}

func TestSignalForAllReachesChildrenStartedLater(t *testing.T) {
	h := newYAMLHarness(t, reviewYAML)
	h.start("r", "docs", `{}`)
	h.signal("r", "ok", "", `{"who":"all"}`)
	eff := h.ok(h.dispatched("split"), `{"docs":["a","b"]}`)
	if len(eff.Dispatches) != 2 {
		t.Fatalf("after split: %v; want both children to take the kept signal", eff.Dispatches)
	}
}

func TestRetryOfAWaitStepTakesTheKeptSignal(t *testing.T) {
	h := newYAMLHarness(t, reviewYAML)
	h.start("r", "review", `{}`)
	h.ok(h.dispatched("classify"), `{}`)
	h.signal("r", "review", "", `{"v":1}`)
	h.fail(h.dispatched("store"), "disk full", false)
	h.retry("r", 1, "review")
	d := h.dispatched("store")
	if d.Attempt != 2 {
		t.Fatalf("store attempt %d after the retry", d.Attempt)
	}
	jsonEq(t, "store input", d.Input, `{"v":1}`)
}

func TestSignalsAreBounded(t *testing.T) {
	h := newYAMLHarness(t, reviewYAML)
	h.start("r", "docs", `{}`)
	for i := range schemas.MaxSignals {
		if eff := h.signal("r", "ok", "docs["+strconv.Itoa(i)+"]/check", ""); eff.Ignored != "" {
			t.Fatalf("signal %d: %s", i, eff.Ignored)
		}
	}
	if eff := h.signal("r", "ok", "", ""); eff.Reason != ReasonSignalIgnored || !strings.Contains(eff.Ignored, "at most") {
		t.Fatalf("signal over the bound: %+v", eff)
	}
}

func TestCheckSignal(t *testing.T) {
	h := newYAMLHarness(t, reviewYAML)
	h.start("r", "review", `{}`)
	h.start("d", "docs", `{}`)
	h.ok(h.dispatched("split"), `{"docs":["a","b"]}`)
	h.signal("d", "ok", "docs[0]/check", `{}`)
	h.start("gone", "review", `{}`)
	h.apply(Event{Kind: EventCancel, Request: "gone"})
	wfOf := func(id string) *topology.Workflow {
		wf, _, err := h.m.defs.Resolve(h.store[id].Workflow, 1)
		if err != nil {
			t.Fatal(err)
		}
		return wf
	}
	check := func(id, name, step string) error {
		return CheckSignal(wfOf(id), h.store[id], func(p string) *schemas.Record { return h.store[id+"/"+p] }, name, step)
	}
	for _, tc := range []struct {
		id, name, step, refused string
	}{
		{"r", "review", "", ""},          // early: kept until review waits
		{"r", "review", "review", ""},    // the same, addressed
		{"d", "ok", "docs[1]/check", ""}, // a child waiting now
		{"d", "ok", "docs[7]/check", ""}, // a child not started: kept
		{"d", "ok", "", ""},              // for every child
		{"gone", "review", "", `request "gone" is cancelled; only a running request takes signals`},
		{"r", "approve", "", `no step of workflow "review" waits for signal "approve"`},
		{"r", "review", "classify", `step classify of workflow "review" does not wait for signal "review"`},
		{"d", "ok", "docs[0]/check", `signal "ok" for step docs[0]/check already received at 2026-01-01T00:00:00Z; the first wins`},
	} {
		err := check(tc.id, tc.name, tc.step)
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%s %s %s: %v", tc.id, tc.name, tc.step, err)
		case tc.refused != "" && (err == nil || err.Error() != "stepwise: signal refused: "+tc.refused || !errors.Is(err, ErrSignalRefused)):
			t.Errorf("%s %s %s: %v, want %q", tc.id, tc.name, tc.step, err, tc.refused)
		}
	}
	// Once review has taken a signal, no step waits for another one.
	for _, d := range h.dispatches {
		if d.Request == "r" && d.Step == "classify" {
			h.ok(d, `{}`)
		}
	}
	h.signal("r", "review", "review", `{}`)
	if err := check("r", "review", ""); err == nil || !strings.Contains(err.Error(), `every step waiting for signal "review" has finished`) {
		t.Errorf("after review finished: %v", err)
	}
	// docs[0]/check took its signal: its store step runs, the check is done.
	h.signal("d", "ok", "docs[1]/check", `{}`)
	if err := check("d", "ok", "docs[1]/check"); err == nil {
		t.Error("a repeated addressed signal was accepted")
	}
}

// The hand-written encoder writes the kept signals as encoding/json does,
// the schema accepts them, and they read back.
func TestSignalsEncode(t *testing.T) {
	h := newYAMLHarness(t, reviewYAML)
	h.start("r", "docs", `{}`)
	h.signal("r", "ok", "docs[1]/check", `{"a":"\u00e9 \"q\""}`)
	h.signal("r", "ok", "", "")
	r := h.store["r"]
	got := schemas.EncodeRecord(r)
	want, _ := json.Marshal(r)
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("invalid JSON %s: %v", got, err)
	}
	_ = json.Unmarshal(want, &w)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("Encode differs from encoding/json:\n got  %s\n want %s", got, want)
	}
	schematest.Valid(t, "state-record.schema.json", got)
	back, err := schemas.DecodeRecord(got)
	if err != nil || len(back.Signals) != 2 || back.Signals[0].Step != "docs[1]/check" || back.Signals[1].Step != "" {
		t.Fatalf("read back: %+v, %v", back, err)
	}
}
