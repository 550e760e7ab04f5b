package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/view"
)

func TestWorkflows(t *testing.T) {
	e := newTestEnv(t)
	var list struct{ Workflows []WorkflowSummary }
	if code, raw := e.do("GET", "/api/v1/workflows", "", &list); code != 200 || len(list.Workflows) != 3 {
		t.Fatalf("list: %d %s", code, raw)
	}
	if w := list.Workflows[0]; w.Name != "chain" || w.Steps != 5 || w.Tasks != 1 {
		t.Errorf("first workflow %+v", w)
	}
	var d WorkflowDetail
	if code, raw := e.do("GET", "/api/v1/workflows/chain", "", &d); code != 200 {
		t.Fatalf("show: %d %s", code, raw)
	}
	kinds := map[string]string{}
	parents := map[string]string{}
	for _, n := range d.DAG.Nodes {
		kinds[n.ID], parents[n.ID] = n.Kind, n.Parent
	}
	want := map[string]string{"__start__": KindStart, "__end__": KindEnd, "a": KindStep, "fan": KindFanOut,
		"fan#each": KindForEach, "fan#collect": KindCollect, "fan/x": KindStep, "fan/y": KindStep, "b": KindStep}
	if len(kinds) != len(want) {
		t.Errorf("nodes %v, want %v", kinds, want)
	}
	for id, k := range want {
		if kinds[id] != k {
			t.Errorf("node %s: kind %q, want %q", id, kinds[id], k)
		}
	}
	if parents["fan/x"] != "fan" || parents["fan#each"] != "fan" || parents["a"] != "" {
		t.Errorf("parents %v", parents)
	}
	var edges []string
	for _, ed := range d.DAG.Edges {
		edges = append(edges, ed.From+">"+ed.To)
	}
	slices.Sort(edges)
	wantEdges := []string{"__start__>a", "a>fan#each", "b>__end__", "fan#collect>b", "fan#each>fan/x", "fan/x>fan/y", "fan/y>fan#collect"}
	if !slices.Equal(edges, wantEdges) {
		t.Errorf("edges %v, want %v", edges, wantEdges)
	}
	if len(d.Definition.Steps) != 3 || len(d.Definition.Tasks) != 1 || d.Definition.Tasks[0].ItemKey != "item" {
		t.Errorf("definition %+v", d.Definition)
	}
	e.expectError("GET", "/api/v1/workflows/nope", "", 404, `unknown workflow "nope"`)
	e.expectError("GET", "/api/v1/nothing-here", "", 404, "no such API endpoint")
}

func TestStartAndWait(t *testing.T) {
	e := newTestEnv(t)
	var c schemas.Completion
	code, raw := e.do("POST", "/api/v1/workflows/chain/requests?id=w-1&wait=20s", `{"n": 3, "tag": "<b>x</b>"}`, &c)
	if code != 200 || c.Status != schemas.Succeeded || c.Request != "w-1" || c.Workflow != "chain" {
		t.Fatalf("start and wait: %d %s", code, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(c.Output, &out); err != nil || out["b"] != "done" || out["tag"] != "<b>x</b>" {
		t.Fatalf("output %s (%v)", c.Output, err)
	}
	if items, _ := out["items"].([]any); len(items) != 3 {
		t.Errorf("items %v", out["items"])
	}

	st := e.waitStatus("w-1", "succeeded")
	if st.Workflow != "chain" || st.Finished == nil || st.Output == nil || st.Output.Truncated || st.Input == nil {
		t.Errorf("status %+v", st)
	}
	var names []string
	for _, s := range st.Steps {
		names = append(names, s.Name+"="+s.Status)
		if s.Started == nil || s.Ended == nil {
			t.Errorf("step %s has no timings", s.Name)
		}
	}
	if got := strings.Join(names, " "); got != "a=succeeded fan=succeeded b=succeeded" {
		t.Errorf("steps %s", got)
	}
	if fan := st.Steps[1]; fan.Children != 3 || fan.Done != 3 {
		t.Errorf("fan step %+v", fan)
	}
	if a := st.Steps[0]; a.Attempt != 1 || a.MaxAttempts != 2 || a.Output == nil {
		t.Errorf("step a %+v", a)
	}
	for _, id := range []string{"a", "fan", "fan/x", "fan/y", "b"} {
		if n := st.Nodes[id]; n == nil || n.Status != "succeeded" {
			t.Errorf("node %s: %+v", id, n)
		}
	}
	if n := st.Nodes["fan/x"]; n.Total != 3 || n.Succeeded != 3 {
		t.Errorf("fan/x progress %+v", n)
	}
	if n := st.Nodes["fan"]; n.Children != 3 || n.ChildrenDone != 3 {
		t.Errorf("fan progress %+v", n)
	}

	// The start of a known id is not written again, and answers at once
	// with the completion when asked to wait.
	before := e.sender.starts.Load()
	var again schemas.Completion
	if code, raw := e.do("POST", "/api/v1/workflows/chain/requests?wait=5s", `{"n": 1}`, &again, idHeader, "w-1"); code != 200 || again.Status != schemas.Succeeded {
		t.Errorf("repeated start: %d %s", code, raw)
	}
	if e.sender.starts.Load() != before {
		t.Errorf("a repeated start was produced again")
	}
	e.expectError("POST", "/api/v1/workflows/other/requests?id=w-1", `{}`, 409, `already exists for workflow "chain"`)
}

func TestStartWithoutWait(t *testing.T) {
	e := newTestEnv(t)
	var acc Accepted
	code, raw := e.do("POST", "/api/v1/workflows/other/requests", "", &acc)
	if code != http.StatusAccepted || acc.ID == "" || acc.Workflow != "other" || acc.URL != "/api/v1/requests/"+acc.ID {
		t.Fatalf("start: %d %s", code, raw)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(acc.ID) {
		t.Errorf("generated id %q is not a UUID", acc.ID)
	}
	// The answer came once the view had the request: it is there now.
	if code, raw := e.do("GET", acc.URL, "", nil); code != 200 {
		t.Errorf("status right after start: %d %s", code, raw)
	}
	e.waitStatus(acc.ID, "succeeded")

	// A wait that runs out answers 202 with the request still running.
	var held Accepted
	code, raw = e.do("POST", "/api/v1/workflows/chain/requests?id=held&wait=300ms", `{"hold": true, "n": 1}`, &held)
	if code != http.StatusAccepted || held.Status != "running" {
		t.Errorf("timed-out wait: %d %s", code, raw)
	}
	close(e.release)
	e.waitStatus("held", "succeeded")
}

func TestStartErrors(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxBody = 1024 })
	e.expectError("POST", "/api/v1/workflows/nope/requests", `{}`, 404, `unknown workflow "nope"`)
	e.expectError("POST", "/api/v1/workflows/chain/requests", `{"n": `, 400, "not valid JSON")
	e.expectError("POST", "/api/v1/workflows/chain/requests", `[1, 2]`, 400, "must be a JSON object, not an array")
	e.expectError("POST", "/api/v1/workflows/chain/requests", `"text"`, 400, "must be a JSON object, not a string")
	e.expectError("POST", "/api/v1/workflows/chain/requests", `{} {}`, 400, "not valid JSON")
	e.expectError("POST", "/api/v1/workflows/chain/requests?id=bad/id", `{}`, 400, "invalid request id")
	e.expectError("POST", "/api/v1/workflows/chain/requests", `{}`, 400, "invalid request id", idHeader, "-leading-dash")
	e.expectError("POST", "/api/v1/workflows/chain/requests?wait=soon", `{}`, 400, "invalid wait")
	e.expectError("POST", "/api/v1/workflows/chain/requests", `{"s": "`+strings.Repeat("x", 2000)+`"}`, 413, "over the 1024-byte limit")
	if n := e.sender.starts.Load(); n != 0 {
		t.Errorf("%d starts produced by refused requests", n)
	}
}

func TestFailedRequest(t *testing.T) {
	e := newTestEnv(t)
	var c schemas.Completion
	code, raw := e.do("POST", "/api/v1/workflows/chain/requests?id=f-1&wait=20s", `{"n": 2, "fail": "<script>alert(1)</script>"}`, &c)
	if code != 200 || c.Status != schemas.Failed || c.Error == nil || c.Error.Step != "b" || c.Error.Message != "<script>alert(1)</script>" {
		t.Fatalf("failed request: %d %s", code, raw)
	}
	st := e.waitStatus("f-1", "failed")
	if st.Error == nil || st.Error.Message != "<script>alert(1)</script>" {
		t.Errorf("status error %+v", st.Error)
	}
	if b := st.Steps[2]; b.Status != "failed" || b.Error != "<script>alert(1)</script>" || b.Attempt != 1 {
		t.Errorf("step b %+v", b)
	}
	if n := st.Nodes["b"]; n.Status != "failed" {
		t.Errorf("node b %+v", n)
	}
	if n := st.Nodes["fan/y"]; n.Status != "succeeded" {
		t.Errorf("node fan/y %+v", n)
	}
}

func TestCancel(t *testing.T) {
	e := newTestEnv(t)
	defer close(e.release)
	var acc Accepted
	if code, raw := e.do("POST", "/api/v1/workflows/chain/requests?id=c-1", `{"hold": true}`, &acc); code != 202 {
		t.Fatalf("start: %d %s", code, raw)
	}
	e.expectError("POST", "/api/v1/requests/c-1/cancel", `{"reason": 5}`, 400, "cancel body")
	var cacc Accepted
	if code, raw := e.do("POST", "/api/v1/requests/c-1/cancel", `{"reason": "changed my mind"}`, &cacc); code != 202 || cacc.Status != "cancelling" {
		t.Fatalf("cancel: %d %s", code, raw)
	}
	st := e.waitStatus("c-1", "cancelled")
	if st.Error == nil || !strings.Contains(st.Error.Message, "changed my mind") {
		t.Errorf("cancelled status error %+v", st.Error)
	}
	if n := st.Nodes["a"]; n.Status != "cancelled" {
		t.Errorf("node a of a cancelled request: %+v", n)
	}
	e.expectError("POST", "/api/v1/requests/c-1/cancel", "", 409, "already cancelled")
	e.expectError("POST", "/api/v1/requests/nobody/cancel", "", 404, `unknown request "nobody"`)
	e.expectError("POST", "/api/v1/requests/c-1/cancel", `{"reason": "`+strings.Repeat("r", 70<<10)+`"}`, 413, "over 64 KiB")
}

func TestStatusAndPayload(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.PreviewLimit = 256 })
	e.expectError("GET", "/api/v1/requests/nobody", "", 404, `unknown request "nobody"`)
	e.expectError("GET", "/api/v1/requests/nobody/payload?part=input", "", 404, `unknown request "nobody"`)
	e.expectError("GET", "/api/v1/requests/nobody/events", "", 404, `unknown request "nobody"`)

	var c schemas.Completion
	if code, raw := e.do("POST", "/api/v1/workflows/chain/requests?id=p-1&wait=20s", `{"n": 1, "big": 1000}`, &c); code != 200 || c.Status != schemas.Succeeded {
		t.Fatalf("start: %d %s", code, raw)
	}
	st := e.waitStatus("p-1", "succeeded")
	out := st.Steps[2].Output
	if out == nil || !out.Truncated || out.Value != nil || len(out.Preview) > 256 || out.Size < 1000 {
		t.Fatalf("output of b: %+v", out)
	}
	var full map[string]any
	if code, raw := e.do("GET", out.URL, "", &full); code != 200 || len(full["blob"].(string)) != 1000 {
		t.Fatalf("full payload %s: %d %.100s", out.URL, code, raw)
	}
	if st.Output == nil || !st.Output.Truncated {
		t.Errorf("request output %+v", st.Output)
	}
	var in map[string]any
	if code, raw := e.do("GET", st.Input.URL, "", &in); code != 200 || in["big"] != 1000.0 {
		t.Errorf("request input: %d %s", code, raw)
	}
	if st.Input.Truncated || st.Input.Value == nil {
		t.Errorf("small input %+v", st.Input)
	}
	e.expectError("GET", "/api/v1/requests/p-1/payload", "", 400, "give ?step=PATH")
	e.expectError("GET", "/api/v1/requests/p-1/payload?step=nope", "", 404, "no payload")
	e.expectError("GET", "/api/v1/requests/p-1/payload?part=input&instance=fan[0]", "", 404, "no payload")
	e.expectError("GET", "/api/v1/requests/p-1?instances=lots", "", 400, "invalid instances")
}

func TestLiveInstances(t *testing.T) {
	e := newTestEnv(t)
	// Hold "a" is not in the fan-out; hold the request inside it instead:
	// start a request whose children run, then look while the root runs.
	var acc Accepted
	if code, raw := e.do("POST", "/api/v1/workflows/chain/requests?id=live-1", `{"hold": true, "n": 4}`, &acc); code != 202 {
		t.Fatalf("start: %d %s", code, raw)
	}
	st := e.waitStatus("live-1", "running")
	if a := st.Steps[0]; a.Status != "running" || st.Nodes["a"].Status != "running" || st.Nodes["fan/x"].Status != "pending" {
		t.Errorf("held request: step a %+v, nodes a %+v fan/x %+v", a, st.Nodes["a"], st.Nodes["fan/x"])
	}
	if st.Finished != nil || st.Output != nil {
		t.Errorf("running request has finished %v output %+v", st.Finished, st.Output)
	}
	close(e.release)
	e.waitStatus("live-1", "succeeded")
}

func TestListRequests(t *testing.T) {
	e := newTestEnv(t)
	for i := range 5 {
		if code, raw := e.do("POST", "/api/v1/workflows/other/requests?wait=20s&id="+fmtID("l", i), "{}", nil); code != 200 {
			t.Fatalf("start %d: %d %s", i, code, raw)
		}
	}
	if code, raw := e.do("POST", "/api/v1/workflows/chain/requests?wait=20s&id=l-fail", `{"n": 1, "fail": "no"}`, nil); code != 200 {
		t.Fatalf("start: %d %s", code, raw)
	}
	var page view.RequestList
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		path := "/api/v1/requests?workflow=other&limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		page = view.RequestList{}
		if code, raw := e.do("GET", path, "", &page); code != 200 || len(page.Requests) > 2 {
			t.Fatalf("list: %d %s", code, raw)
		}
		for _, r := range page.Requests {
			got = append(got, r.ID)
			if r.Workflow != "other" || r.Status != "succeeded" {
				t.Errorf("row %+v", r)
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	// Newest first: the ids were started in order.
	if want := []string{"l-004", "l-003", "l-002", "l-001", "l-000"}; !slices.Equal(got, want) {
		t.Errorf("paged ids %v, want %v", got, want)
	}
	var failed view.RequestList
	if code, raw := e.do("GET", "/api/v1/requests?status=failed", "", &failed); code != 200 || len(failed.Requests) != 1 ||
		failed.Requests[0].ID != "l-fail" || failed.Requests[0].Error != "no" {
		_, everything := e.do("GET", "/api/v1/requests", "", nil)
		t.Errorf("failed list: %d %s; all: %s", code, raw, everything)
	}
	var all view.RequestList
	if code, _ := e.do("GET", "/api/v1/requests", "", &all); code != 200 || len(all.Requests) != 6 {
		t.Errorf("whole list %+v", all)
	}
	e.expectError("GET", "/api/v1/requests?status=done", "", 400, "invalid status")
	e.expectError("GET", "/api/v1/requests?limit=0", "", 400, "invalid limit")
	e.expectError("GET", "/api/v1/requests?cursor=!!", "", 400, "invalid cursor")

	var st view.Stats
	if code, raw := e.do("GET", "/api/v1/stats", "", &st); code != 200 || !st.Ready || st.Requests != 6 || st.RecordBytes == 0 || st.CatchUpMillis <= 0 {
		t.Errorf("stats: %d %s", code, raw)
	}
	t.Logf("view stats after 6 requests: %+v", st)
}

func TestEvents(t *testing.T) {
	e := newTestEnv(t)
	if code, raw := e.do("POST", "/api/v1/workflows/chain/requests?id=ev-1", `{"hold": true, "n": 5}`, nil); code != 202 {
		t.Fatalf("start: %d %s", code, raw)
	}
	resp, err := http.Get(e.base + "/api/v1/requests/ev-1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, ct)
	}
	first := true
	evs := readEvents(t, resp.Body, func(ev sseEvent) bool {
		if first {
			first = false
			close(e.release) // the first status is in: let the request go on
		}
		return ev.name == "end"
	})
	var statuses []string
	var last view.Status
	for _, ev := range evs {
		if ev.name != "status" {
			continue
		}
		if err := json.Unmarshal(ev.data, &last); err != nil {
			t.Fatalf("status event %s: %v", ev.data, err)
		}
		statuses = append(statuses, last.Status)
	}
	if len(statuses) < 2 || statuses[0] != "running" || last.Status != "succeeded" {
		t.Errorf("statuses streamed %v", statuses)
	}
	if n := last.Nodes["fan/y"]; n.Succeeded != 5 || n.Total != 5 {
		t.Errorf("last fan/y progress %+v", n)
	}
}

func TestUIAndOpenAPI(t *testing.T) {
	e := newTestEnv(t)
	resp, err := http.Get(e.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("UI: %d %v", resp.StatusCode, resp.Header)
	}
	for _, p := range []string{"/app.js", "/app.css", "/vendor/dagre.min.js", "/vendor/dagre.LICENSE"} {
		if code, raw := e.do("GET", p, "", nil); code != 200 || len(raw) == 0 {
			t.Errorf("%s: %d", p, code)
		}
	}

	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if code, raw := e.do("GET", "/api/v1/openapi.json", "", &doc); code != 200 || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi: %d %.200s", code, raw)
	}
	// Every route of the server is documented, with its method.
	routes := map[string]string{"GET /api/v1/auth": ""}
	for _, rt := range e.srv.routeScopes {
		routes[rt.Pattern] = ""
	}
	for r := range routes {
		method, path, _ := strings.Cut(r, " ")
		if doc.Paths[path][strings.ToLower(method)] == nil {
			t.Errorf("route %s is not in openapi.json", r)
		}
		// and the server has it (a missing one answers the JSON 404).
		probe := strings.NewReplacer("{name}", "chain", "{id}", "x").Replace(path)
		var ae apiError
		if _, _ = e.do(method, probe, "", &ae); strings.Contains(ae.Error, "no such API endpoint") {
			t.Errorf("route %s is documented but not served", r)
		}
	}
	n := 0
	for _, ops := range doc.Paths {
		n += len(ops)
	}
	if n != len(routes) {
		t.Errorf("openapi.json has %d operations, the server %d", n, len(routes))
	}
	_ = time.Second
}

// The body limit is what the requests topic takes: a start too large for
// the topic's max.message.bytes (or the producer's batch limit, with
// Kafka's default topic setting) is refused with 413 and the sizes, and
// nothing is produced.
func TestStartLargerThanTheTopicTakes(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxBody = 2 << 20 })
	e.expectError("POST", "/api/v1/workflows/chain/requests", `{"s": "`+strings.Repeat("x", 1_000_000)+`"}`, 413,
		"an input of 1000009 bytes is over the")
	e.expectError("POST", "/api/v1/workflows/chain/requests", `{"s": "`+strings.Repeat("x", 1_000_000)+`"}`, 413,
		"the client's 1000012-byte batch limit")

	e = newTestEnv(t, func(c *Config) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Conn.Brokers...))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		topic := c.Conn.Prefix.Requests()
		small := "50000"
		resps, err := kadm.NewClient(cl).AlterTopicConfigs(context.Background(), []kadm.AlterConfig{{Name: "max.message.bytes", Value: &small}}, topic)
		if err == nil {
			_, err = resps.On(topic, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
	})
	e.expectError("POST", "/api/v1/workflows/chain/requests", `{"s": "`+strings.Repeat("x", 60_000)+`"}`, 413,
		"the 50000 bytes of max.message.bytes of topic stepwise.requests")
	var c schemas.Completion
	if code, raw := e.do("POST", "/api/v1/workflows/chain/requests?wait=20s", `{"s": "`+strings.Repeat("x", 40_000)+`"}`, &c); code != 200 || c.Status != schemas.Succeeded {
		t.Fatalf("a start under the limit: %d %.300s", code, raw)
	}
}

func TestRetryAfterCancel(t *testing.T) {
	e := newTestEnv(t)
	var acc Accepted
	if code, raw := e.do("POST", "/api/v1/workflows/chain/requests?id=rt-1", `{"hold": true}`, &acc); code != 202 {
		t.Fatalf("start: %d %s", code, raw)
	}
	e.expectError("POST", "/api/v1/requests/rt-1/retry", "", 409, "only a failed or cancelled request")
	if code, raw := e.do("POST", "/api/v1/requests/rt-1/cancel", `{}`, nil); code != 202 {
		t.Fatalf("cancel: %d %s", code, raw)
	}
	e.waitStatus("rt-1", "cancelled")
	e.expectError("POST", "/api/v1/requests/nobody/retry", "", 404, `unknown request "nobody"`)
	e.expectError("POST", "/api/v1/requests/rt-1/retry", `{"from": "nope"}`, 400, `no top-level step "nope"`)
	var racc Accepted
	if code, raw := e.do("POST", "/api/v1/requests/rt-1/retry", "", &racc); code != 202 || racc.Status != "retrying" {
		t.Fatalf("retry: %d %s", code, raw)
	}
	close(e.release)
	st := e.waitStatus("rt-1", "succeeded")
	if n := st.Nodes["a"]; n.MaxAttempt != 2 {
		t.Errorf("step a after the retry: %+v, want attempt 2", n)
	}
	e.expectError("POST", "/api/v1/requests/rt-1/retry", "", 409, "is succeeded")

	var h History
	if code, raw := e.do("GET", "/api/v1/requests/rt-1/history", "", &h); code != 200 {
		t.Fatalf("history: %d %s", code, raw)
	}
	var steps []string
	for _, a := range h.Attempts {
		steps = append(steps, fmt.Sprintf("%s#%d:%s", a.Step, a.Attempt, a.Outcome))
	}
	if h.Run != 2 || len(steps) < 2 || steps[0] != "a#1:cancelled" || steps[1] != "a#2:succeeded" {
		t.Errorf("history of the retried request: run %d, %v", h.Run, steps)
	}
	if len(h.Attempts) > 1 {
		if a := h.Attempts[1]; a.Worker != testWorkerID || a.OutputBytes == 0 {
			t.Errorf("the succeeded attempt %+v: want worker %q and its output's size", a, testWorkerID)
		}
	}
	var page History
	if code, raw := e.do("GET", "/api/v1/requests/rt-1/history?offset=1&limit=1", "", &page); code != 200 || len(page.Attempts) != 1 || page.Attempts[0].Step != h.Attempts[1].Step || page.Attempts[0].Attempt != h.Attempts[1].Attempt || page.Total != h.Total {
		t.Errorf("second page of one: %d %s", code, raw)
	}
	e.expectError("GET", "/api/v1/requests/rt-1/history?limit=0", "", 400, "invalid limit")
}
