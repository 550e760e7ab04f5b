package processors

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/processors/machine"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/schemas/schematest"
	"github.com/stepwise-run/stepwise/topology"
)

// Every record the processors write — tasks, completions, state — is what
// the protocol's schemas describe.
func TestEncodedRecordsFollowTheSchemas(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 5e6, time.UTC)
	p := topology.DefaultPrefix
	eff := &machine.Effects{
		Writes: []machine.Write{
			{Key: "r-1", Record: &schemas.Record{Request: "r-1", Workflow: "idp", Version: 2, Partition: 1, Status: schemas.Running,
				Input: json.RawMessage(`{"a":1}`), Created: now, Updated: now,
				Steps: map[string]*schemas.StepState{"ocr": {Status: schemas.StepRunning, Attempt: 1, Started: now, Deadline: now.Add(time.Minute)}}}},
			{Key: "r-1/docs[0]"}, // tombstone
		},
		Dispatches: []machine.Dispatch{
			{Queue: "ocr", Request: "r-1", Workflow: "idp", Step: "docs[0]/ocr", Attempt: 2, Instance: "r-1-docs-0",
				Input: json.RawMessage(`{"page":1}`), Deadline: now.Add(time.Minute), Partition: 1},
			{Queue: "split", Request: "r-2", Workflow: "idp", Step: "split", Attempt: 1, Instance: "r-2", Input: json.RawMessage(`{}`),
				Heartbeat: 10 * time.Second},
		},
		Completions: []schemas.Completion{
			{Request: "r-1", Workflow: "idp", Version: 2, Status: schemas.Succeeded, Output: json.RawMessage(`{"ok":true}`), Started: now, Finished: now},
			{Request: "r-3", Workflow: "idp", Status: schemas.Failed, Error: &schemas.Failure{Step: "ocr", Attempt: 3, Message: "bad"}, Started: now, Finished: now},
		},
	}
	kinds := map[string]int{}
	for _, r := range newEncoder(p, false).records(1, eff) {
		switch r.Topic {
		case p.State():
			kinds["state"]++
			if r.Value != nil {
				schematest.Valid(t, "state-record.schema.json", r.Value)
			}
		case p.Completions():
			kinds["completion"]++
			schematest.Valid(t, "completion.schema.json", r.Value)
		case p.Tasks("ocr"), p.Tasks("split"):
			kinds["task"]++
			schematest.Valid(t, "task.schema.json", r.Value)
			schematest.ValidHeaders(t, "task", headerMap(r))
		default:
			t.Errorf("record on unexpected topic %s", r.Topic)
		}
	}
	if kinds["state"] != 2 || kinds["completion"] != 2 || kinds["task"] != 2 {
		t.Fatalf("records by kind: %v", kinds)
	}
}

func headerMap(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}
