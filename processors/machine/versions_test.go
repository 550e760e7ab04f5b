package machine

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/definitions"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
)

// apply adds version of a workflow, defined by the YAML steps given, to cat.
func applyVersion(t *testing.T, cat *definitions.Catalog, name string, version int, steps string) {
	t.Helper()
	src := "workflows:\n  - name: " + name + "\n    steps:\n" + steps
	set, err := topology.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("version %d: %v", version, err)
	}
	body := set.Lookup(name).Source
	if _, err := cat.Add(&definitions.Record{Workflow: name, Version: version, Source: string(body), Hash: definitions.HashOf(body), File: "test.yaml"}); err != nil {
		t.Fatal(err)
	}
}

func deleteVersion(t *testing.T, cat *definitions.Catalog, name string, version int) {
	t.Helper()
	if _, err := cat.Add(&definitions.Record{Workflow: name, Version: version, Deleted: true}); err != nil {
		t.Fatal(err)
	}
}

func versionedHarness(t *testing.T) (*harness, *definitions.Catalog) {
	cat := definitions.NewCatalog()
	applyVersion(t, cat, "wf", 1, "      - name: a\n      - name: b\n        depends: [a]\n")
	h := &harness{t: t, m: New(cat), store: mapStore{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), timers: map[string]Timer{}}
	return h, cat
}

func TestRequestRunsToTheEndOnTheVersionItStartedUnder(t *testing.T) {
	h, cat := versionedHarness(t)
	h.start("old", "wf", `{}`)
	h.ok(h.dispatched("a"), `{"a":1}`)
	// Version 2 drops b and adds c: the running request must not see it.
	applyVersion(t, cat, "wf", 2, "      - name: a\n      - name: c\n        depends: [a]\n")
	h.start("new", "wf", `{}`)
	if h.store["old"].Version != 1 || h.store["new"].Version != 2 {
		t.Fatalf("versions recorded: old %d, new %d; want 1 and 2", h.store["old"].Version, h.store["new"].Version)
	}
	h.ok(h.dispatched("b"), `{"b":1}`)
	h.ok(h.dispatched("a"), `{"a":2}`) // the new request's a
	var old, nw *schemas.Completion
	for i := range h.completions {
		switch h.completions[i].Request {
		case "old":
			old = &h.completions[i]
		}
	}
	if old == nil || old.Status != schemas.Succeeded || old.Version != 1 {
		t.Fatalf("old request: %+v, want succeeded on version 1", old)
	}
	jsonEq(t, "old output", old.Output, `{"b":1}`)
	for _, d := range h.dispatches {
		if d.Request == "new" && d.Step == "b" || d.Request == "old" && d.Step == "c" {
			t.Fatalf("%s ran step %s of the other version", d.Request, d.Step)
		}
	}
	h.ok(h.dispatched("c"), `{"c":1}`)
	for i := range h.completions {
		if h.completions[i].Request == "new" {
			nw = &h.completions[i]
		}
	}
	if nw == nil || nw.Version != 2 {
		t.Fatalf("new request: %+v, want completed on version 2", nw)
	}
}

func TestStartPinnedToAVersion(t *testing.T) {
	h, cat := versionedHarness(t)
	applyVersion(t, cat, "wf", 2, "      - name: z\n")
	h.apply(Event{Kind: EventStart, Request: "r", Workflow: "wf", Version: 1, Input: json.RawMessage(`{}`), Partition: 3})
	if h.store["r"].Version != 1 || h.dispatched("a").Request != "r" {
		t.Fatalf("start --version 1 did not run version 1")
	}
	h.apply(Event{Kind: EventStart, Request: "r9", Workflow: "wf", Version: 9, Input: json.RawMessage(`{}`), Partition: 3})
	c := h.completions[len(h.completions)-1]
	if c.Request != "r9" || c.Status != schemas.Failed || !strings.Contains(c.Error.Message, "no version 9") {
		t.Fatalf("start of a missing version: %+v", c)
	}
}

func TestDeletedWorkflowRefusesStartsButRunningRequestsFinish(t *testing.T) {
	h, cat := versionedHarness(t)
	h.start("running", "wf", `{}`)
	deleteVersion(t, cat, "wf", 2)
	h.start("late", "wf", `{}`)
	c := h.completions[len(h.completions)-1]
	if c.Request != "late" || c.Status != schemas.Failed || !strings.Contains(c.Error.Message, "deleted") {
		t.Fatalf("start after delete: %+v", c)
	}
	h.ok(h.dispatched("a"), `{}`)
	h.ok(h.dispatched("b"), `{}`)
	c = h.completions[len(h.completions)-1]
	if c.Request != "running" || c.Status != schemas.Succeeded {
		t.Fatalf("running request after delete: %+v", c)
	}
}

func TestRequestWhoseVersionIsMissingFailsWithAReason(t *testing.T) {
	h, _ := versionedHarness(t)
	h.start("r", "wf", `{}`)
	a := h.dispatched("a")
	// The record says version 5, which no catalogue holds (the topic
	// lost it): the next event fails the request instead of guessing.
	rec := h.store["r"].Clone()
	rec.Version = 5
	h.store["r"] = rec
	h.ok(a, `{}`)
	if len(h.completions) != 1 {
		t.Fatalf("completions = %d, want 1", len(h.completions))
	}
	c := h.completions[0]
	if c.Status != schemas.Failed || !strings.Contains(c.Error.Message, "no version 5") {
		t.Fatalf("completion = %+v, want failed naming the missing version", c)
	}
}

func TestRecordWithoutVersionRunsOnVersion1(t *testing.T) {
	h, cat := versionedHarness(t)
	applyVersion(t, cat, "wf", 2, "      - name: z\n")
	// A record as the first encoding wrote it: no "version".
	old := `{"v":1,"request":"r","workflow":"wf","id":"r","partition":3,"status":"running","input":{},` +
		`"steps":{"a":{"status":"running","attempt":1,"started":"2026-01-01T00:00:00Z"}},"created":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:00:00Z"}`
	rec, err := schemas.DecodeRecord([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	h.store["r"] = rec
	h.ok(Dispatch{Request: "r", Step: "a", Attempt: 1}, `{"a":1}`)
	if d := h.dispatched("b"); d.Request != "r" {
		t.Fatalf("a v1 record did not continue on version 1: %v", h.stepsDispatched())
	}
}
