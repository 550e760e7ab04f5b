package schemas_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stepwise-run/stepwise/definitions"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/schemas/schematest"
)

func TestEverySchemaCompiles(t *testing.T) {
	c := schematest.Compiler(t)
	want := []string{
		"start.schema.json", "cancel.schema.json", "task.schema.json", "result.schema.json",
		"result-error.schema.json", "completion.schema.json", "state-record.schema.json",
		"definition.schema.json", "retry.schema.json", "signal.schema.json", "heartbeat.schema.json", "headers.schema.json", "headers.schema.json#/$defs/control", "headers.schema.json#/$defs/task", "headers.schema.json#/$defs/result",
	}
	for _, n := range want {
		schematest.Compile(t, c, n)
	}
}

func TestExamples(t *testing.T) {
	c := schematest.Compiler(t)
	cases := []struct {
		schema string
		valid  bool
		json   string
	}{
		// requests
		{"start.schema.json", true, `{"type": "start", "workflow": "book-word-counts", "id": "r-1", "input": {"text": "..."}}`},
		{"start.schema.json", true, `{"type": "start", "workflow": "ns/idp", "id": "0b9e2c4a-7f0e-4d43-9a0e-1e0f3c2b1a99", "input": {}, "future": 1}`},
		{"start.schema.json", false, `{"type": "start", "workflow": "idp", "id": "r-1", "input": [1]}`},
		{"start.schema.json", false, `{"type": "start", "workflow": "idp", "id": "r-1"}`},
		{"start.schema.json", false, `{"type": "start", "workflow": "idp", "id": "-r", "input": {}}`},
		{"start.schema.json", false, `{"type": "start", "workflow": "idp", "id": "r 1", "input": {}}`},
		{"start.schema.json", false, `{"type": "start", "workflow": "idp", "id": "` + strings.Repeat("a", 129) + `", "input": {}}`},
		{"start.schema.json", true, `{"type": "start", "workflow": "idp", "id": "` + strings.Repeat("a", 128) + `", "input": {}}`},
		{"start.schema.json", false, `{"type": "cancel", "workflow": "idp", "id": "r-1", "input": {}}`},
		{"cancel.schema.json", true, `{"type": "cancel", "id": "r-1", "reason": "user asked"}`},
		{"cancel.schema.json", true, `{"type": "cancel", "id": "r-1"}`},
		{"cancel.schema.json", false, `{"type": "cancel"}`},
		{"signal.schema.json", true, `{"type": "signal", "id": "r-1", "name": "approve", "data": {"by": "ann"}}`},
		{"signal.schema.json", true, `{"type": "signal", "id": "r-1", "name": "review", "step": "docs[2]/review"}`},
		{"signal.schema.json", false, `{"type": "signal", "id": "r-1", "name": "approve", "data": [1]}`},
		{"signal.schema.json", false, `{"type": "signal", "id": "r-1", "name": "ok now"}`},
		{"signal.schema.json", false, `{"type": "signal", "id": "r-1"}`},
		{"heartbeat.schema.json", true, `{"details": {"page": 3}}`},
		{"heartbeat.schema.json", true, `{}`},
		{"heartbeat.schema.json", false, `{"details": 3}`},
		{"headers.schema.json#/$defs/result", true, `{"stepwise-request": "r-1", "stepwise-step": "ocr", "stepwise-attempt": "2", "stepwise-status": "heartbeat"}`},
		{"headers.schema.json#/$defs/task", true, `{"stepwise-request": "r-1", "stepwise-workflow": "idp", "stepwise-step": "ocr", "stepwise-attempt": "1", "stepwise-instance": "r-1", "stepwise-reply-topic": "stepwise.results", "stepwise-reply-partition": "0", "stepwise-heartbeat-interval": "10000"}`},
		{"headers.schema.json#/$defs/task", false, `{"stepwise-request": "r-1", "stepwise-workflow": "idp", "stepwise-step": "ocr", "stepwise-attempt": "1", "stepwise-instance": "r-1", "stepwise-reply-topic": "stepwise.results", "stepwise-reply-partition": "0", "stepwise-heartbeat-interval": "10s"}`},
		// tasks and results
		{"task.schema.json", true, `{"text": "hello"}`},
		{"task.schema.json", false, `"hello"`},
		{"headers.schema.json#/$defs/task", true, `{"stepwise-request": "r-1", "stepwise-workflow": "idp", "stepwise-step": "docs[1]/pages[7]/ocr", "stepwise-attempt": "1", "stepwise-instance": "r-1", "stepwise-reply-topic": "stepwise.results", "stepwise-reply-partition": "0", "stepwise-deadline": "2026-11-25T10:00:30.5Z", "traceparent": "x"}`},
		{"headers.schema.json#/$defs/task", false, `{"stepwise-request": "r-1", "stepwise-workflow": "idp", "stepwise-step": "ocr", "stepwise-attempt": "0", "stepwise-instance": "r-1", "stepwise-reply-topic": "stepwise.results", "stepwise-reply-partition": "0"}`},
		{"headers.schema.json#/$defs/task", false, `{"stepwise-request": "r-1", "stepwise-workflow": "idp", "stepwise-step": "ocr", "stepwise-attempt": "1", "stepwise-instance": "r-1", "stepwise-reply-topic": "stepwise.results"}`},
		{"headers.schema.json#/$defs/task", false, `{"stepwise-request": "r-1", "stepwise-workflow": "idp", "stepwise-step": "ocr", "stepwise-attempt": "1", "stepwise-instance": "r-1", "stepwise-reply-topic": "stepwise.results", "stepwise-reply-partition": "0", "stepwise-deadline": "in a minute"}`},
		{"headers.schema.json#/$defs/task", false, `{"stepwise-request": "r-1", "stepwise-workflow": "idp", "stepwise-step": "docs[x]/ocr", "stepwise-attempt": "1", "stepwise-instance": "r-1", "stepwise-reply-topic": "stepwise.results", "stepwise-reply-partition": "0"}`},
		{"headers.schema.json#/$defs/result", true, `{"stepwise-request": "r-1", "stepwise-step": "ocr", "stepwise-attempt": "2", "stepwise-status": "error"}`},
		{"headers.schema.json#/$defs/result", false, `{"stepwise-request": "r-1", "stepwise-step": "ocr", "stepwise-attempt": "2", "stepwise-status": "failed"}`},
		{"result.schema.json", true, `{"words": 3}`},
		{"result.schema.json", false, `[1, 2, 3]`},
		{"result-error.schema.json", true, `{"message": "ocr engine busy", "retryable": true}`},
		{"result-error.schema.json", false, `{"message": "ocr engine busy"}`},
		{"result-error.schema.json", false, `{"message": "ocr engine busy", "retryable": "yes"}`},
		// completions
		{"completion.schema.json", true, `{"id": "r-1", "workflow": "idp", "status": "succeeded", "output": {"n": 1}, "started": "2026-11-25T10:00:00Z", "finished": "2026-11-25T10:00:01Z"}`},
		{"completion.schema.json", true, `{"id": "r-1", "workflow": "idp", "status": "failed", "error": {"step": "ocr", "attempt": 3, "message": "boom"}, "started": "2026-11-25T10:00:00Z", "finished": "2026-11-25T10:00:01Z"}`},
		{"completion.schema.json", true, `{"id": "r-1", "workflow": "idp", "status": "cancelled", "started": "2026-11-25T10:00:00Z", "finished": "2026-11-25T10:00:01Z"}`},
		{"completion.schema.json", false, `{"id": "r-1", "workflow": "idp", "status": "failed", "started": "2026-11-25T10:00:00Z", "finished": "2026-11-25T10:00:01Z"}`},
		{"completion.schema.json", false, `{"id": "r-1", "workflow": "idp", "status": "succeeded", "started": "2026-11-25T10:00:00Z", "finished": "2026-11-25T10:00:01Z"}`},
		{"completion.schema.json", false, `{"id": "r-1", "workflow": "idp", "status": "done", "output": {}, "started": "2026-11-25T10:00:00Z", "finished": "2026-11-25T10:00:01Z"}`},
		{"completion.schema.json", false, `{"id": "r-1", "workflow": "idp", "status": "succeeded", "output": {}, "started": "yesterday", "finished": "2026-11-25T10:00:01Z"}`},
		// state
		{"state-record.schema.json", false, `{"v": 1, "request": "r-1", "workflow": "idp", "partition": 0, "status": "sleeping", "created": "2026-11-25T10:00:00Z", "updated": "2026-11-25T10:00:00Z"}`},
		{"state-record.schema.json", false, `{"v": 1, "request": "r-1", "workflow": "idp", "path": "docs/1", "partition": 0, "status": "running", "created": "2026-11-25T10:00:00Z", "updated": "2026-11-25T10:00:00Z"}`},
		{"state-record.schema.json", false, `{"v": 1, "request": "r-1", "workflow": "idp", "partition": 0, "status": "running", "steps": {"ocr": {"status": "queued"}}, "created": "2026-11-25T10:00:00Z", "updated": "2026-11-25T10:00:00Z"}`},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%d-%s", i, tc.schema), func(t *testing.T) {
			err := schematest.Compile(t, c, tc.schema).Validate(schematest.Instance(t, tc.json))
			if tc.valid && err != nil {
				t.Errorf("valid example rejected: %v\n%s", err, tc.json)
			}
			if !tc.valid && err == nil {
				t.Errorf("invalid example accepted:\n%s", tc.json)
			}
		})
	}
}

// TestMachineTypes checks that what processors/machine encodes is what the
// state and completion schemas describe.
func TestMachineTypes(t *testing.T) {
	c := schematest.Compiler(t)
	now := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)
	request := &schemas.Record{
		Request: "r-1", Workflow: "idp", Version: 4, Partition: 3, Status: schemas.Running,
		Input: json.RawMessage(`{"bundle": "b.pdf"}`),
		Steps: map[string]*schemas.StepState{
			"split": {Status: schemas.StepSucceeded, Attempt: 1, Worker: "split-host/7", Output: json.RawMessage(`{"docs": [1, 2]}`), Started: now, Ended: now.Add(time.Second)},
			"docs":  {Status: schemas.StepRunning, Children: 2, Done: 1, Started: now},
			"notify": {Status: schemas.StepWaiting, Attempt: 2, Error: "smtp down", RetryAt: now.Add(time.Minute),
				Earlier: []schemas.Attempt{{Attempt: 1, Outcome: "failed", Error: "smtp down", Worker: "mail-host/3", Started: now, Ended: now}}},
		},
		Created: now, Updated: now,
	}
	child := &schemas.Record{
		Request: "r-1", Workflow: "idp", Path: "docs[1]/pages[0]", Task: "page", ID: "5b1f7c3e-8d2a-4f5e-9c1b-2a3d4e5f6a7b",
		Partition: 3, Status: schemas.StatusFailed,
		Steps: map[string]*schemas.StepState{
			"ocr": {Status: schemas.StepFailed, Attempt: 3, Error: "bad scan", Started: now, Ended: now, Deadline: now.Add(time.Minute)},
		},
		Error:   &schemas.Failure{Step: "docs[1]/pages[0]/ocr", Attempt: 3, Message: "bad scan"},
		Created: now, Updated: now, ExpireAt: now.Add(24 * time.Hour),
	}
	progress := &schemas.Record{
		Kind: schemas.KindFanout, Request: "r-1", Workflow: "idp", Path: "docs[1]/pages",
		Partition: 3, Status: schemas.Running, Children: 7, Done: 2, Created: now, Updated: now,
	}
	state := schematest.Compile(t, c, "state-record.schema.json")
	for _, r := range []*schemas.Record{request, child, progress} {
		b := schemas.EncodeRecord(r)
		if err := state.Validate(schematest.Instance(t, string(b))); err != nil {
			t.Errorf("Encode output rejected by state-record.schema.json: %v\n%s", err, b)
		}
	}

	completion := schematest.Compile(t, c, "completion.schema.json")
	for _, cm := range []schemas.Completion{
		{Request: "r-1", Workflow: "idp", Version: 2, Status: schemas.Succeeded, Output: json.RawMessage(`{"ok": true}`), Started: now, Finished: now},
		{Request: "r-1", Workflow: "idp", Status: schemas.Failed, Error: &schemas.Failure{Step: "ocr", Attempt: 3, Message: "boom"}, Started: now, Finished: now},
		{Request: "r-1", Workflow: "idp", Status: schemas.Cancelled, Error: &schemas.Failure{Message: "user asked"}, Started: now, Finished: now},
	} {
		b, err := json.Marshal(cm)
		if err != nil {
			t.Fatal(err)
		}
		if err := completion.Validate(schematest.Instance(t, string(b))); err != nil {
			t.Errorf("schemas.Completion rejected by completion.schema.json: %v\n%s", err, b)
		}
	}

	defSchema := schematest.Compile(t, c, "definition.schema.json")
	for _, d := range []*definitions.Record{
		{Workflow: "idp", Version: 2, Hash: definitions.HashOf([]byte("workflows: []\n")), Source: "workflows: []\n", File: "idp.yaml", Applied: now},
		{Workflow: "ns/idp", Version: 3, Deleted: true, Applied: now},
	} {
		b := definitions.Encode(d)
		if err := defSchema.Validate(schematest.Instance(t, string(b))); err != nil {
			t.Errorf("definitions.Encode output rejected by definition.schema.json: %v\n%s", err, b)
		}
	}
	if err := defSchema.Validate(schematest.Instance(t, `{"v":1,"workflow":"w","version":1,"applied":"2026-01-01T00:00:00Z"}`)); err == nil {
		t.Errorf("definition.schema.json accepts a version with neither source nor deletion")
	}

	resultErr := schematest.Compile(t, c, "result-error.schema.json")
	b, _ := json.Marshal(schemas.StepError{Message: "boom", Retryable: true})
	if err := resultErr.Validate(schematest.Instance(t, string(b))); err != nil {
		t.Errorf("schemas.StepError rejected by result-error.schema.json: %v\n%s", err, b)
	}
}

// TestVectors checks the worker vectors against the schemas: well-formed
// tasks and every expected result whose headers were well-formed must
// validate, so SDKs replaying them learn the protocol and nothing else.
func TestVectors(t *testing.T) {
	c := schematest.Compiler(t)
	taskHeaders := schematest.Compile(t, c, "headers.schema.json#/$defs/task")
	resultHeaders := schematest.Compile(t, c, "headers.schema.json#/$defs/result")
	taskBody := schematest.Compile(t, c, "task.schema.json")
	ok := schematest.Compile(t, c, "result.schema.json")
	failure := schematest.Compile(t, c, "result-error.schema.json")

	b, err := schemas.FS.ReadFile("vectors/worker.json")
	if err != nil {
		t.Fatal(err)
	}
	var vf schemas.WorkerVectors
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&vf); err != nil {
		t.Fatalf("vectors/worker.json: %v", err)
	}
	if len(vf.Cases) < 10 {
		t.Fatalf("only %d vector cases", len(vf.Cases))
	}
	names := map[string]bool{}
	for _, vc := range vf.Cases {
		t.Run(vc.Name, func(t *testing.T) {
			if names[vc.Name] {
				t.Fatalf("duplicate case name")
			}
			names[vc.Name] = true
			if _, ok := vf.Handlers[vc.Handler.Kind]; !ok {
				t.Fatalf("handler kind %q is not described under handlers", vc.Handler.Kind)
			}
			if (vc.Task.Raw == nil) == (vc.Task.Value == nil) {
				t.Fatalf("task must have exactly one of value and raw")
			}
			headersErr := taskHeaders.Validate(toAny(t, vc.Task.Headers))
			called := vc.HandlerCalled == nil || *vc.HandlerCalled
			if called {
				// The handler runs only for well-formed tasks.
				if headersErr != nil {
					t.Errorf("handler runs but the task headers are invalid: %v", headersErr)
				}
				if err := taskBody.Validate(schematest.Instance(t, string(vc.Task.Value))); err != nil {
					t.Errorf("handler runs but the task value is invalid: %v", err)
				}
			}
			e := vc.Expect
			if e == nil {
				if called {
					t.Errorf("no result expected but the handler runs")
				}
				return
			}
			if (e.Value == nil) == (e.Error == nil) {
				t.Fatalf("expect must have exactly one of value and error")
			}
			if e.Topic != vc.Task.Headers["stepwise-reply-topic"] || fmt.Sprint(e.Partition) != vc.Task.Headers["stepwise-reply-partition"] || e.Key != vc.Task.Headers["stepwise-request"] {
				t.Errorf("expected topic/partition/key %s/%d/%s do not follow the task's reply headers", e.Topic, e.Partition, e.Key)
			}
			for _, h := range []string{"stepwise-request", "stepwise-step", "stepwise-attempt"} {
				if e.Headers[h] != vc.Task.Headers[h] {
					t.Errorf("expected header %s = %q, not copied from the task (%q)", h, e.Headers[h], vc.Task.Headers[h])
				}
			}
			if e.Headers["stepwise-worker"] != vf.WorkerID {
				t.Errorf("expected stepwise-worker %q, want the vectors' workerId %q", e.Headers["stepwise-worker"], vf.WorkerID)
			}
			if len(e.Headers) != 5 {
				t.Errorf("expected %d headers, the protocol has 5 (4 and the worker's id)", len(e.Headers))
			}
			if headersErr == nil {
				if err := resultHeaders.Validate(toAny(t, e.Headers)); err != nil {
					t.Errorf("expected result headers invalid: %v", err)
				}
			}
			switch {
			case e.Value != nil && e.Headers["stepwise-status"] == "ok":
				if err := ok.Validate(schematest.Instance(t, string(e.Value))); err != nil {
					t.Errorf("expected ok value invalid: %v", err)
				}
			case e.Value != nil:
				if err := failure.Validate(schematest.Instance(t, string(e.Value))); err != nil {
					t.Errorf("expected error value invalid: %v", err)
				}
			default:
				if e.Headers["stepwise-status"] != "error" {
					t.Errorf("expect.error with status %q", e.Headers["stepwise-status"])
				}
			}
		})
	}
}

func toAny(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return schematest.Instance(t, string(b))
}

// TestAsyncAPI checks the AsyncAPI document's structure and that every
// reference in it resolves: local ones inside the document, file ones to
// an embedded schema and, with a fragment, to a definition in it.
func TestAsyncAPI(t *testing.T) {
	b, err := schemas.FS.ReadFile("asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("asyncapi.yaml: %v", err)
	}
	if doc["asyncapi"] != "3.0.0" {
		t.Errorf("asyncapi version %v, want 3.0.0", doc["asyncapi"])
	}
	c := schematest.Compiler(t)
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "$ref" {
					refs = append(refs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	if len(refs) < 20 {
		t.Fatalf("only %d references found", len(refs))
	}
	for _, ref := range refs {
		file, frag, _ := strings.Cut(ref, "#")
		if file == "" {
			if lookup(doc, frag) == nil {
				t.Errorf("reference %q does not resolve in the document", ref)
			}
			continue
		}
		if _, err := schemas.FS.ReadFile(path.Clean(file)); err != nil {
			t.Errorf("reference %q: %v", ref, err)
			continue
		}
		schematest.Compile(t, c, ref)
	}
	channels, _ := doc["channels"].(map[string]any)
	for _, want := range []string{"requests", "tasks", "results", "completions", "state"} {
		if channels[want] == nil {
			t.Errorf("channel %q missing", want)
		}
	}
}

// lookup follows a JSON pointer such as /components/messages/start.
func lookup(doc map[string]any, pointer string) any {
	var cur any = doc
	for _, p := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

// TestHeaderConstants checks the Go names of the headers against
// headers.schema.json, so code using them cannot drift from the schema.
func TestHeaderConstants(t *testing.T) {
	b, _ := schemas.FS.ReadFile("headers.schema.json")
	var doc struct {
		Defs map[string]struct {
			Required   []string                   `json:"required"`
			Properties map[string]json.RawMessage `json:"properties"`
			Pattern    string                     `json:"pattern"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	task := []string{schemas.HeaderRequest, schemas.HeaderWorkflow, schemas.HeaderStep, schemas.HeaderAttempt, schemas.HeaderInstance, schemas.HeaderReplyTopic, schemas.HeaderReplyPartition}
	if !slices.Equal(doc.Defs["task"].Required, task) {
		t.Errorf("task headers required %v, constants %v", doc.Defs["task"].Required, task)
	}
	for _, h := range []string{schemas.HeaderDeadline, schemas.HeaderHeartbeat} {
		if doc.Defs["task"].Properties[h] == nil {
			t.Errorf("%s is not a task header", h)
		}
	}
	result := []string{schemas.HeaderRequest, schemas.HeaderStep, schemas.HeaderAttempt, schemas.HeaderStatus}
	if !slices.Equal(doc.Defs["result"].Required, result) {
		t.Errorf("result headers required %v, constants %v", doc.Defs["result"].Required, result)
	}
	if !strings.Contains(string(doc.Defs["result"].Properties[schemas.HeaderStatus]), `["ok", "error", "heartbeat"]`) {
		t.Errorf("status values in the schema are not %q, %q and %q", schemas.StatusOK, schemas.StatusError, schemas.StatusHeartbeat)
	}
	if doc.Defs["requestId"].Pattern != schemas.RequestIDPattern {
		t.Errorf("request id pattern %q, constant %q", doc.Defs["requestId"].Pattern, schemas.RequestIDPattern)
	}
}
