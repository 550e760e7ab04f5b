package machine

import (
	"testing"

	"github.com/stepwise-run/stepwise/schemas"
)

// TestContinueOnFailure has one case per rule of failure.go's comment.
func TestContinueOnFailure(t *testing.T) {
	const wf = `
workflows:
  - name: w
    steps:
      - name: charge
        continueOnFailure: true
        retry: {maxAttempts: 2, initial: 1s}
      - name: notify
        depends: [charge]
        when: '!("charge" in steps)'
      - name: ship
        depends: [charge, __start__]
      - name: audit
`
	t.Run("a failure after the retries continues; dependents run without its output", func(t *testing.T) {
		h := newHarness(t, parsed(t, wf))
		h.start("r", "w", `{"order":1}`)
		h.fail(h.dispatched("charge"), "card declined", true)
		h.fireDue()
		h.fail(h.dispatched("charge"), "card declined", true)
		ss := h.store["r"].Steps["charge"]
		if ss.Status != schemas.StepFailed || !ss.Continued || ss.Error != "card declined (attempt 2 of 2)" {
			t.Fatalf("charge = %+v", ss)
		}
		if len(h.completions) != 0 {
			t.Fatalf("the request completed: %+v", h.completions)
		}
		jsonEq(t, "input of notify", h.dispatched("notify").Input, `{}`)
		jsonEq(t, "input of ship", h.dispatched("ship").Input, `{"order":1}`)
		h.ok(h.dispatched("notify"), `{"notified":true}`)
		h.ok(h.dispatched("ship"), `{"shipped":false}`)
		h.ok(h.dispatched("audit"), `{"audit":1}`)
		wantDone(t, h, schemas.Succeeded, `{"notified":true,"shipped":false,"audit":1}`)
	})
	t.Run("an error that is not retryable continues at once", func(t *testing.T) {
		h := newHarness(t, parsed(t, wf))
		h.start("r", "w", `{}`)
		h.fail(h.dispatched("charge"), "no such card", false)
		if ss := h.store["r"].Steps["charge"]; ss.Status != schemas.StepFailed || !ss.Continued || ss.Attempt != 1 {
			t.Fatalf("charge = %+v", ss)
		}
		h.dispatched("notify")
	})
	t.Run("a success runs the dependents with its output", func(t *testing.T) {
		h := newHarness(t, parsed(t, wf))
		h.start("r", "w", `{}`)
		h.ok(h.dispatched("charge"), `{"paid":true}`)
		if s := stepStatus(h, "r", "notify"); s != schemas.StepSkipped {
			t.Fatalf("notify is %q, want skipped (its when: is false once charge succeeded)", s)
		}
		jsonEq(t, "input of ship", h.dispatched("ship").Input, `{"paid":true}`)
	})
	t.Run("a step without it still fails the request", func(t *testing.T) {
		h := newHarness(t, parsed(t, wf))
		h.start("r", "w", `{}`)
		h.fail(h.dispatched("audit"), "disk full", false)
		if c := wantDone(t, h, schemas.Failed, ""); c.Error.Step != "audit" {
			t.Fatalf("failure = %+v", c.Error)
		}
	})
	t.Run("a retry of the request does not run a continued step again", func(t *testing.T) {
		h := newHarness(t, parsed(t, wf))
		h.start("r", "w", `{}`)
		h.fail(h.dispatched("charge"), "no such card", false)
		h.fail(h.dispatched("audit"), "disk full", false)
		wantDone(t, h, schemas.Failed, "")
		n := len(h.dispatches)
		h.apply(Event{Kind: EventRetry, Request: "r", Run: h.store["r"].Run()})
		for _, d := range h.dispatches[n:] {
			if d.Step == "charge" {
				t.Fatalf("the retry ran charge again: %v", h.stepsDispatched()[n:])
			}
		}
		h.dispatched("audit")
	})
}
