package api

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func (nopSender) Signal(context.Context, string, string, string, json.RawMessage) error {
	return errors.New("not sending")
}

// A signal that arrives before its step waits is kept and taken when the
// step starts waiting; one for a step waiting now completes it; the API
// refuses what the request would ignore, before writing anything.
func TestSignal(t *testing.T) {
	e := newTestEnv(t)
	var acc Accepted
	if code, raw := e.do("POST", "/api/v1/workflows/review/requests?id=sg-early", `{"hold": true}`, &acc); code != 202 {
		t.Fatalf("start: %d %s", code, raw)
	}
	if code, raw := e.do("POST", "/api/v1/workflows/review/requests?id=sg-late", `{}`, &acc); code != 202 {
		t.Fatalf("start: %d %s", code, raw)
	}
	e.waitStatus("sg-early", "running")

	// Early: "first" is held, approve does not wait yet.
	var sacc Accepted
	if code, raw := e.do("POST", "/api/v1/requests/sg-early/signals/approve", `{"by": "ann"}`, &sacc); code != 202 || sacc.Status != "signalled" {
		t.Fatalf("early signal: %d %s", code, raw)
	}
	// The API refuses a repeated signal once its view has the first
	// (the processors ignore it in any case: the first wins).
	for i := 0; ; i++ {
		if root := e.srv.View().Get("sg-early").Instance(""); root != nil && len(root.Signals) == 1 {
			break
		}
		if i > 1000 {
			t.Fatalf("the view never saw the signal: %+v", e.srv.View().Get("sg-early").Instance(""))
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.expectError("POST", "/api/v1/requests/sg-early/signals/approve", `{"by": "bob"}`, 409, "already received")
	st0 := e.waitStatus("sg-early", "running")
	if len(st0.Signals) != 1 || st0.Signals[0].Name != "approve" || st0.Signals[0].Step != "" {
		t.Errorf("status signals %+v", st0.Signals)
	}
	if len(st0.Steps) != 3 || st0.Steps[1].WaitsFor != "approve" {
		t.Errorf("status steps %+v; want approve waiting for signal approve", st0.Steps)
	}
	e.expectError("POST", "/api/v1/requests/sg-early/signals/nope", `{}`, 409, `no step of workflow "review" waits for signal "nope"`)
	e.expectError("POST", "/api/v1/requests/sg-early/signals/approve?step=first", `{}`, 409, `step first of workflow "review" does not wait for signal "approve"`)
	e.expectError("POST", "/api/v1/requests/sg-early/signals/approve", `[1]`, 400, "signal data")
	e.expectError("POST", "/api/v1/requests/nobody/signals/approve", `{}`, 404, `unknown request "nobody"`)
	close(e.release)
	st := e.waitStatus("sg-early", "succeeded")
	if st.Output == nil || !strings.Contains(string(st.Output.Value), `"by":"ann"`) {
		t.Errorf("output of the early-signalled request: %+v; want the first signal's data", st.Output)
	}

	// Late: approve waits, then the signal (without a body: {}) completes it.
	deadline := e.waitStatus("sg-late", "running")
	for i := 0; deadline.Nodes["approve"] == nil || deadline.Nodes["approve"].Running == 0; i++ {
		if i > 500 {
			t.Fatalf("approve never waited: %+v", deadline.Nodes["approve"])
		}
		deadline = e.waitStatus("sg-late", "running")
	}
	if code, raw := e.do("POST", "/api/v1/requests/sg-late/signals/approve?step=approve", ``, nil); code != 202 {
		t.Fatalf("late signal: %d %s", code, raw)
	}
	e.waitStatus("sg-late", "succeeded")
	e.expectError("POST", "/api/v1/requests/sg-late/signals/approve", `{}`, 409, `request "sg-late" is succeeded; only a running request takes signals`)
}
