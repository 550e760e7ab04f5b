package processors

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/processors/machine"
	"github.com/stepwise-run/stepwise/schemas"
)

func TestRetainedKeepsOnlyWhatFinishedRequestsNeed(t *testing.T) {
	now := time.Now()
	big := json.RawMessage(`{"text":"lots"}`)
	steps := map[string]*schemas.StepState{"a": {Status: schemas.StepSucceeded, Output: big}}
	done := &schemas.Record{Request: "r", Workflow: "w", Status: schemas.StatusSucceeded, Input: big, Output: big, Steps: steps, ExpireAt: now}
	got := retained(done)
	if got.Input != nil || got.Output != nil || got.Steps != nil {
		t.Fatalf("finished request kept its payloads: %+v", got)
	}
	if got.Status != schemas.StatusSucceeded || !got.ExpireAt.Equal(now) || got.Request != "r" {
		t.Fatalf("finished request lost what the machine needs: %+v", got)
	}
	if tm := machine.TimersOf(got); len(tm) != 1 || tm[0].Kind != machine.TimerExpire {
		t.Fatalf("timers of the retained record: %+v", tm)
	}
	running := &schemas.Record{Request: "r", Status: schemas.Running, Input: big, Steps: steps}
	child := &schemas.Record{Request: "r", Path: "f[0]", Status: schemas.StatusSucceeded, Output: big}
	for _, r := range []*schemas.Record{running, child} {
		if retained(r) != r {
			t.Fatalf("record %+v was slimmed; only finished requests are", r)
		}
	}
}
