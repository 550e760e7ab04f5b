package machine

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/schemas"
)

const heartbeatYAML = `workflows:
  - name: ocr
    steps:
      - name: ocr
        heartbeatTimeout: 30s
        timeout: 1h
        retry: {maxAttempts: 2, initial: 1s}
      - name: plain
`

func (h *harness) beat(d Dispatch, details string) Effects {
	ev := Event{Kind: EventHeartbeat, Request: d.Request, Step: d.Step, Attempt: d.Attempt}
	if details != "" {
		ev.Output = json.RawMessage(details)
	}
	return h.apply(ev)
}

func TestHeartbeatsKeepAnAttemptAlive(t *testing.T) {
	h := newYAMLHarness(t, heartbeatYAML)
	start := h.now
	h.start("r", "ocr", `{}`)
	d := h.dispatched("ocr")
	if d.Heartbeat != 10*time.Second || !d.Deadline.Equal(start.Add(time.Hour)) {
		t.Fatalf("dispatch heartbeat %s deadline %s; want 10s, in 1h", d.Heartbeat, d.Deadline)
	}
	if h.dispatched("plain").Heartbeat != 0 {
		t.Error("a step without heartbeatTimeout asks for heartbeats")
	}
	if tms := TimersOf(h.store["r"]); len(tms) != 2 {
		t.Fatalf("timers of the record (restore): %+v; want the timeout and the heartbeat", tms)
	}
	for i := 1; i <= 5; i++ {
		h.now = start.Add(time.Duration(i) * 20 * time.Second)
		eff := h.beat(d, `{"page":`+string(rune('0'+i))+`}`)
		if eff.Ignored != "" || len(eff.SetTimers) != 1 || !eff.SetTimers[0].At.Equal(h.now.Add(30*time.Second)) {
			t.Fatalf("beat %d: %+v", i, eff)
		}
		// The timer set before this beat fires, and is stale.
		if eff := h.apply(Event{Kind: EventTimer, Request: "r", Step: "ocr", Attempt: 1, Timer: TimerHeartbeat}); eff.Reason != ReasonStaleTimer {
			t.Fatalf("an earlier heartbeat timer after beat %d: %+v", i, eff)
		}
	}
	jsonEq(t, "kept details", h.store["r"].Steps["ocr"].Heartbeat, `{"page":5}`)
	if eff := h.beat(Dispatch{Request: "r", Step: "ocr", Attempt: 2}, ""); eff.Reason != ReasonStaleHeartbeat {
		t.Fatalf("beat for another attempt: %+v", eff)
	}
	if eff := h.beat(h.dispatched("plain"), ""); eff.Reason != ReasonStaleHeartbeat {
		t.Fatalf("beat for a step without heartbeats: %+v", eff)
	}
	if eff := h.beat(Dispatch{Request: "nope", Step: "ocr", Attempt: 1}, ""); eff.Reason != ReasonUnknownRequest {
		t.Fatalf("beat for an unknown request: %+v", eff)
	}
	h.ok(d, `{"text":"x"}`)
	if eff := h.beat(d, ""); eff.Reason != ReasonStaleHeartbeat {
		t.Fatalf("beat after the result: %+v", eff)
	}
}

func TestSilentAttemptFailsAtItsHeartbeatTimeout(t *testing.T) {
	h := newYAMLHarness(t, heartbeatYAML)
	start := h.now
	h.start("r", "ocr", `{}`)
	h.ok(h.dispatched("plain"), `{}`)
	h.fireDue() // 30s: no heartbeat
	if !h.now.Equal(start.Add(30 * time.Second)) {
		t.Fatalf("fired at %s", h.now.Sub(start))
	}
	ss := h.store["r"].Steps["ocr"]
	if ss.Status != schemas.StepWaiting || ss.Error != "no heartbeat for 30s" {
		t.Fatalf("ocr after silence: %+v", ss)
	}
	h.fireDue() // backoff: attempt 2
	if d := h.dispatched("ocr"); d.Attempt != 2 || d.Heartbeat != 10*time.Second {
		t.Fatalf("attempt 2: %+v", d)
	}
	h.fireDue()
	if c := h.completions; len(c) != 1 || c[0].Status != schemas.Failed || c[0].Error.Message != "no heartbeat for 30s (attempt 2 of 2)" {
		t.Fatalf("completions %+v", c)
	}
}

// Details that are not an object, or too large, are not kept; the
// heartbeat still counts.
func TestHeartbeatDetailsBounded(t *testing.T) {
	h := newYAMLHarness(t, heartbeatYAML)
	h.start("r", "ocr", `{}`)
	d := h.dispatched("ocr")
	big := `{"x":"` + strings.Repeat("a", MaxHeartbeatDetails) + `"}`
	for _, details := range []string{`[1]`, big} {
		h.now = h.now.Add(time.Second)
		if eff := h.beat(d, details); eff.Ignored != "" || len(eff.SetTimers) != 1 {
			t.Fatalf("beat with %.20s: %+v", details, eff)
		}
		if got := h.store["r"].Steps["ocr"].Heartbeat; got != nil {
			t.Fatalf("kept %.40s", got)
		}
	}
}
