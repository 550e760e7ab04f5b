package machine

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
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

// TestTolerateFailures has one case per rule of tolerated failures.
func TestTolerateFailures(t *testing.T) {
	wf := func(bound string) string {
		return `
workflows:
  - name: w
    tasks:
      - name: t
        itemListKey: pages
        steps:
          - {name: ocr, retry: {maxAttempts: 1}}
          - {name: side, retry: {maxAttempts: 1}}
    steps:
      - name: split
      - name: fan
        task: t
        depends: [split]
        tolerate: {failures: ` + bound + `}
      - name: join
        depends: [fan]
`
	}
	run := func(t *testing.T, bound string, fail ...int) *harness {
		h := newHarness(t, parsed(t, wf(bound)))
		h.start("r", "w", `{}`)
		h.ok(h.dispatched("split"), `{"pages":[1,2,3,4]}`)
		for i := range 4 {
			ocr := h.dispatched(fmt.Sprintf("fan[%d]/ocr", i))
			if slices.Contains(fail, i) {
				h.fail(ocr, fmt.Sprintf("page %d unreadable", i), false)
				continue
			}
			h.ok(ocr, fmt.Sprintf(`{"page":"p%d"}`, i))
			h.ok(h.dispatched(fmt.Sprintf("fan[%d]/side", i)), `{"s":1}`)
		}
		return h
	}
	t.Run("within a count the join runs with the failed children under pagesFailed", func(t *testing.T) {
		h := run(t, "2", 1, 3)
		jsonEq(t, "input of join", h.dispatched("join").Input, `{"pages":["p0","p2"],"s":1,"pagesFailed":[
			{"index":1,"id":"r/fan[1]","step":"fan[1]/ocr","attempt":1,"error":"page 1 unreadable"},
			{"index":3,"id":"r/fan[3]","step":"fan[3]/ocr","attempt":1,"error":"page 3 unreadable"}]}`)
		h.ok(h.dispatched("join"), `{"done":true}`)
		wantDone(t, h, schemas.Succeeded, `{"done":true}`)
	})
	t.Run("a failed child's other running tasks are revoked", func(t *testing.T) {
		h := newHarness(t, parsed(t, wf("1")))
		h.start("r", "w", `{}`)
		h.ok(h.dispatched("split"), `{"pages":[1]}`)
		eff := h.fail(h.dispatched("fan[0]/ocr"), "bad", false)
		if len(eff.Revokes) != 1 || eff.Revokes[0].Step != "fan[0]/side" {
			t.Fatalf("revokes = %+v, want fan[0]/side", eff.Revokes)
		}
		// The late answer of the revoked task changes nothing.
		if eff := h.ok(h.dispatched("fan[0]/side"), `{"s":1}`); eff.Reason == "" {
			t.Fatalf("late answer applied: %+v", eff)
		}
		jsonEq(t, "input of join", h.dispatched("join").Input, `{"pages":[],"pagesFailed":[{"index":0,"id":"r/fan[0]","step":"fan[0]/ocr","attempt":1,"error":"bad"}]}`)
	})
	t.Run("a percentage is of the children, rounded down", func(t *testing.T) {
		h := run(t, "50%", 0, 2) // 2 of 4
		h.dispatched("join")
		h = run(t, "49%", 0) // 1 of 4 is 25%, the bound is 1
		h.dispatched("join")
		h = run(t, "20%", 0) // the bound is 0
		if c := wantDone(t, h, schemas.Failed, ""); c.Error.Step != "fan[0]/ocr" {
			t.Fatalf("failure = %+v", c.Error)
		}
	})
	t.Run("one failure beyond the bound fails the request", func(t *testing.T) {
		h := run(t, "1", 0, 2)
		if c := wantDone(t, h, schemas.Failed, ""); c.Error.Step != "fan[2]/ocr" || c.Error.Message != "page 2 unreadable" {
			t.Fatalf("failure = %+v", c.Error)
		}
		for _, d := range h.dispatches {
			if d.Step == "join" {
				t.Fatal("join dispatched")
			}
		}
	})
	t.Run("a retry runs the tolerated and the interrupted children again", func(t *testing.T) {
		h := run(t, "1", 0, 2)
		n := len(h.dispatches)
		h.apply(Event{Kind: EventRetry, Request: "r", Run: h.store["r"].Run()})
		var again []string
		for _, d := range h.dispatches[n:] {
			again = append(again, d.Step)
		}
		// 0 failed within the bound, 2 beyond it, 3 was interrupted by the failure.
		if strings.Join(again, " ") != "fan[0]/ocr fan[0]/side fan[2]/ocr fan[2]/side fan[3]/ocr fan[3]/side" {
			t.Fatalf("the retry dispatched %v", again)
		}
		for _, i := range []int{0, 2, 3} {
			h.ok(h.dispatched(fmt.Sprintf("fan[%d]/ocr", i)), fmt.Sprintf(`{"page":"p%d"}`, i))
			h.ok(h.dispatched(fmt.Sprintf("fan[%d]/side", i)), `{"s":1}`)
		}
		jsonEq(t, "input of join", h.dispatched("join").Input, `{"pages":["p0","p1","p2","p3"],"s":1,"pagesFailed":[]}`)
	})
}

// TestOnFailureHandler has one case per rule of the failure handler.
func TestOnFailureHandler(t *testing.T) {
	const wf = `
workflows:
  - name: w
    onFailure: release
    defaults: {retry: {maxAttempts: 2, initial: 1s}}
    steps:
      - name: reserve
      - name: charge
        depends: [reserve]
        retry: {maxAttempts: 1}
      - name: mail
        depends: [reserve]
`
	failCharge := func(t *testing.T) *harness {
		h := newHarness(t, parsed(t, wf))
		h.start("r", "w", `{"user":"u"}`)
		h.ok(h.dispatched("reserve"), `{"seat":7}`)
		eff := h.fail(h.dispatched("charge"), "card declined", false)
		if len(eff.Completions) != 0 {
			t.Fatalf("completed before the handler ran: %+v", eff.Completions)
		}
		if len(eff.Revokes) != 1 || eff.Revokes[0].Step != "mail" {
			t.Fatalf("revokes = %+v, want mail", eff.Revokes)
		}
		return h
	}
	t.Run("the handler gets the failure, the input and the outputs so far; then the request fails", func(t *testing.T) {
		h := failCharge(t)
		hd := h.dispatched(topology.OnFailureStep)
		if hd.Queue != "release" || hd.Attempt != 1 {
			t.Fatalf("handler dispatch = %+v", hd)
		}
		jsonEq(t, "handler input", hd.Input, `{"failure":{"step":"charge","attempt":1,"error":"card declined"},"input":{"user":"u"},"outputs":{"reserve":{"seat":7}}}`)
		// A late result of the revoked step runs nothing.
		if eff := h.ok(h.dispatched("mail"), `{}`); eff.Reason == "" || len(eff.Dispatches) != 0 {
			t.Fatalf("late result applied: %+v", eff)
		}
		h.ok(hd, `{"released":true}`)
		c := wantDone(t, h, schemas.Failed, "")
		if c.Error.Step != "charge" || c.Error.Message != "card declined" {
			t.Fatalf("failure = %+v", c.Error)
		}
	})
	t.Run("a handler that fails for good adds its error", func(t *testing.T) {
		h := failCharge(t)
		h.fail(h.dispatched(topology.OnFailureStep), "release service down", true)
		h.fireDue()
		h.fail(h.dispatched(topology.OnFailureStep), "release service down", true)
		c := wantDone(t, h, schemas.Failed, "")
		if c.Error.Step != "charge" || c.Error.Message != "card declined; onFailure handler failed: release service down (attempt 2 of 2)" {
			t.Fatalf("failure = %+v", c.Error)
		}
	})
	t.Run("a cancel does not run the handler", func(t *testing.T) {
		h := newHarness(t, parsed(t, wf))
		h.start("r", "w", `{}`)
		h.apply(Event{Kind: EventCancel, Request: "r"})
		wantDone(t, h, schemas.Cancelled, "")
		for _, d := range h.dispatches {
			if d.Step == topology.OnFailureStep {
				t.Fatal("handler dispatched on cancel")
			}
		}
	})
	t.Run("a cancel while the handler runs revokes it", func(t *testing.T) {
		h := failCharge(t)
		eff := h.apply(Event{Kind: EventCancel, Request: "r"})
		if len(eff.Revokes) != 1 || eff.Revokes[0].Step != topology.OnFailureStep || eff.Revokes[0].Queue != "release" {
			t.Fatalf("revokes = %+v", eff.Revokes)
		}
		wantDone(t, h, schemas.Cancelled, "")
	})
	t.Run("a retry after the handler runs it again on the next failure", func(t *testing.T) {
		h := failCharge(t)
		h.ok(h.dispatched(topology.OnFailureStep), `{}`)
		h.apply(Event{Kind: EventRetry, Request: "r", Run: h.store["r"].Run()})
		h.fail(h.dispatched("charge"), "declined again", false)
		if hd := h.dispatched(topology.OnFailureStep); hd.Attempt != 2 {
			t.Fatalf("second handler dispatch = %+v", hd)
		}
	})
}
