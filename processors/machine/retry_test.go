package machine

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stepwise-run/stepwise/schemas"
)

func (h *harness) retry(id string, run int, from string) Effects {
	return h.apply(Event{Kind: EventRetry, Request: id, Run: run, From: from})
}

func TestCancelMarksStepsCancelledAndRevokesRunningTasks(t *testing.T) {
	h := newHarness(t, wordCounts())
	h.start("r", "book-word-counts", `{}`)
	h.ok(h.dispatched("book-split"), `{"sections":[1,2]}`)
	h.ok(h.dispatched("section-counts[0]/segment-word-counts"), `{"section":1}`)
	eff := h.apply(Event{Kind: EventCancel, Request: "r", Reason: "user asked"})
	var revoked []string
	for _, r := range eff.Revokes {
		revoked = append(revoked, r.Step+"@"+r.Queue)
		if !strings.Contains(r.Reason, "user asked") {
			t.Errorf("revoke reason %q", r.Reason)
		}
	}
	want := "section-counts[1]/segment-word-counts@segment-word-counts store-title@store-title"
	if strings.Join(revoked, " ") != want {
		t.Fatalf("revoked %v, want %s", revoked, want)
	}
	root := h.store["r"]
	if root.Steps["store-title"].Status != schemas.StepCancelled || root.Steps["section-counts"].Status != schemas.StepCancelled || root.Steps["book-split"].Status != schemas.StepSucceeded {
		t.Fatalf("steps after cancel: %+v", root.Steps)
	}
	if c := h.store["r/section-counts[1]"]; c.Status != schemas.StatusCancelled || c.Steps["segment-word-counts"].Status != schemas.StepCancelled {
		t.Fatalf("running child after cancel: %+v", c)
	}
	if eff := h.apply(Event{Kind: EventCancel, Request: "nope"}); eff.Reason != ReasonCancelIgnored {
		t.Fatalf("cancel of an unknown request: %+v", eff)
	}
}

func TestRetryRunsOnlyWhatDidNotSucceed(t *testing.T) {
	h := newHarness(t, wordCounts())
	h.start("r", "book-word-counts", `{}`)
	h.ok(h.dispatched("book-split"), `{"sections":[1,2,3]}`)
	h.ok(h.dispatched("store-title"), `{"title":"t"}`)
	h.ok(h.dispatched("section-counts[0]/segment-word-counts"), `{"section":10}`)
	h.fail(h.dispatched("section-counts[1]/segment-word-counts"), "corrupt page", false)
	if c := h.completions[0]; c.Status != schemas.Failed {
		t.Fatalf("first run: %+v", c)
	}
	before := len(h.dispatches)
	if eff := h.retry("r", 2, ""); eff.Reason != ReasonRetryIgnored {
		t.Fatalf("retry naming run 2 of a request in run 1 was applied")
	}
	h.retry("r", 1, "")
	again := h.stepsDispatched()[before:]
	if strings.Join(again, " ") != "section-counts[1]/segment-word-counts#2 section-counts[2]/segment-word-counts#2" {
		t.Fatalf("retry dispatched %v; want only the two children that did not succeed, attempt 2", again)
	}
	if h.store["r"].Run() != 2 || h.store["r"].Status != schemas.Running {
		t.Fatalf("root after retry: run %d, %s", h.store["r"].Run(), h.store["r"].Status)
	}
	// A repeated retry (the same message again) changes nothing.
	if eff := h.retry("r", 1, ""); eff.Reason != ReasonRetryIgnored || len(eff.Dispatches) != 0 {
		t.Fatalf("duplicate retry: %+v", eff)
	}
	// The first run's late answer for child 2 (attempt 1) is stale.
	if eff := h.ok(Dispatch{Request: "r", Step: "section-counts[2]/segment-word-counts", Attempt: 1}, `{"section":99}`); eff.Reason != ReasonStaleResult {
		t.Fatalf("late result of the first run: %+v", eff)
	}
	h.ok(h.dispatched("section-counts[1]/segment-word-counts"), `{"section":20}`)
	h.ok(h.dispatched("section-counts[2]/segment-word-counts"), `{"section":30}`)
	h.ok(h.dispatched("sum-splits"), `{"sum":60}`)
	c := h.completions[len(h.completions)-1]
	if len(h.completions) != 2 || c.Status != schemas.Succeeded {
		t.Fatalf("completions %+v", h.completions)
	}
	jsonEq(t, "output", c.Output, `{"sum":60,"title":"t"}`)
	for _, d := range h.dispatches[before:] {
		if d.Step == "book-split" || d.Step == "store-title" || d.Step == "section-counts[0]/segment-word-counts" {
			t.Fatalf("retry ran %s again, which had succeeded", d.Step)
		}
	}
}

func TestRetryFromAStepRunsItAndWhatFollows(t *testing.T) {
	h := newHarness(t, linear3())
	h.start("r", "linear3", `{}`)
	h.ok(h.dispatched("a"), `{"a":1}`)
	h.ok(h.dispatched("b"), `{"b":1}`)
	h.fail(h.dispatched("c"), "bad", false)
	before := len(h.dispatches)
	if eff := h.retry("r", 1, "nope"); eff.Reason != ReasonRetryIgnored || !strings.Contains(eff.Ignored, `no top-level step "nope"`) {
		t.Fatalf("retry from an unknown step: %+v", eff)
	}
	h.retry("r", 1, "b")
	if got := strings.Join(h.stepsDispatched()[before:], " "); got != "b#2" {
		t.Fatalf("retry from b dispatched %s, want b#2", got)
	}
	h.ok(h.dispatched("b"), `{"b":2}`)
	c := h.dispatched("c")
	if c.Attempt != 2 {
		t.Fatalf("c after the retry: attempt %d, want 2", c.Attempt)
	}
	jsonEq(t, "input of c", c.Input, `{"b":2}`)
	h.ok(c, `{"c":2}`)
	if last := h.completions[len(h.completions)-1]; last.Status != schemas.Succeeded {
		t.Fatalf("after retry: %+v", last)
	}
}

func TestRetryAfterCancelAndRetryBudgetPerRun(t *testing.T) {
	h := newHarness(t, linear3()) // 3 attempts per step and run
	h.start("r", "linear3", `{}`)
	h.ok(h.dispatched("a"), `{}`)
	h.apply(Event{Kind: EventCancel, Request: "r", Run: 1})
	h.retry("r", 1, "")
	for range 2 {
		h.fail(h.dispatched("b"), "flaky", true)
		h.fireDue()
	}
	if b := h.dispatched("b"); b.Attempt != 4 {
		t.Fatalf("b in run 2: attempt %d, want 4 (the third of this run)", b.Attempt)
	}
	h.fail(h.dispatched("b"), "flaky", true)
	last := h.completions[len(h.completions)-1]
	if last.Status != schemas.Failed || !strings.Contains(last.Error.Message, "attempt 3 of 3") {
		t.Fatalf("run 2 after 3 failures: %+v %+v", last, last.Error)
	}
	if eff := h.apply(Event{Kind: EventCancel, Request: "r", Run: 1}); eff.Reason != ReasonCancelIgnored {
		t.Fatalf("a cancel of run 1 applied to run 2")
	}
}

func TestEarlierAttemptsAreKeptBounded(t *testing.T) {
	wf := linear3()
	wf.Graph.ByName["a"].Retry.MaxAttempts = 12
	h := newHarness(t, wf)
	h.start("r", "linear3", `{}`)
	for i := range 10 {
		h.fail(h.dispatched("a"), "flaky "+string(rune('0'+i)), true)
		h.fireDue()
	}
	h.ok(h.dispatched("a"), `{}`)
	ss := h.store["r"].Steps["a"]
	if ss.Status != schemas.StepSucceeded || ss.Attempt != 11 {
		t.Fatalf("a: %+v", ss)
	}
	if len(ss.Earlier) != schemas.MaxEarlierAttempts || ss.EarlierDropped != 10-schemas.MaxEarlierAttempts {
		t.Fatalf("earlier attempts: %d kept, %d dropped; want %d and %d", len(ss.Earlier), ss.EarlierDropped, schemas.MaxEarlierAttempts, 10-schemas.MaxEarlierAttempts)
	}
	if first, last := ss.Earlier[0], ss.Earlier[len(ss.Earlier)-1]; first.Attempt != 1 || first.Error != "flaky 0" || last.Attempt != 10 || last.Outcome != "failed" {
		t.Fatalf("first %+v, last %+v", first, last)
	}
	if b := h.store["r"].Steps["b"]; len(b.Earlier) != 0 {
		t.Fatalf("a step that succeeded at once has earlier attempts: %+v", b.Earlier)
	}
}

// TestAttemptsNameTheirWorker: the worker id a result carries is kept on
// the step's current attempt and goes with it into the earlier attempts.
func TestAttemptsNameTheirWorker(t *testing.T) {
	h := newHarness(t, linear3())
	h.start("r", "linear3", `{}`)
	d := h.dispatched("a")
	h.apply(Event{Kind: EventResult, Request: d.Request, Step: d.Step, Attempt: d.Attempt, Worker: "host-a/17",
		Error: &schemas.StepError{Message: "flaky", Retryable: true}})
	if ss := h.store["r"].Steps["a"]; ss.Status != schemas.StepWaiting || ss.Worker != "host-a/17" {
		t.Fatalf("a after a failed attempt: %+v", ss)
	}
	h.fireDue()
	d = h.dispatched("a")
	if ss := h.store["r"].Steps["a"]; ss.Worker != "" {
		t.Fatalf("a new attempt inherits the worker of the last: %+v", ss)
	}
	h.apply(Event{Kind: EventResult, Request: d.Request, Step: d.Step, Attempt: d.Attempt, Worker: "host-b/9", Output: json.RawMessage(`{}`)})
	ss := h.store["r"].Steps["a"]
	if ss.Status != schemas.StepSucceeded || ss.Worker != "host-b/9" {
		t.Fatalf("a after it succeeded: %+v", ss)
	}
	if len(ss.Earlier) != 1 || ss.Earlier[0].Worker != "host-a/17" {
		t.Fatalf("earlier attempts %+v, want attempt 1 by host-a/17", ss.Earlier)
	}
}

// TestRetryOfAFanOutOverNotAList: a fan-out that failed because its input
// was not a list fails again on a retry (the input has not changed); it is
// never marked succeeded without running.
func TestRetryOfAFanOutOverNotAList(t *testing.T) {
	h := newHarness(t, wordCounts())
	h.start("r", "book-word-counts", `{}`)
	h.ok(h.dispatched("store-title"), `{}`)
	h.ok(h.dispatched("book-split"), `{"sections": 5}`)
	root := h.store["r"]
	if root.Status != schemas.StatusFailed {
		t.Fatalf("fan-out over 5: request %s, want failed", root.Status)
	}
	h.retry("r", root.Run(), "")
	root = h.store["r"]
	if ss := root.Steps["section-counts"]; ss != nil && ss.Status == schemas.StepSucceeded {
		t.Fatalf("the fan-out over 5 is marked succeeded after a retry: %+v", ss)
	}
	if root.Status != schemas.StatusFailed {
		t.Fatalf("after the retry the request is %s, want failed again (the list is still not a list)", root.Status)
	}
	if root.Steps["sum-splits"] != nil {
		t.Fatalf("the join ran after a fan-out over 5: %+v", root.Steps["sum-splits"])
	}
}
