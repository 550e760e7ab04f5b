package machine

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
)

func linear3() *topology.Workflow {
	return &topology.Workflow{Name: "linear3", Graph: graph(nil, fastRetry, "a", "b<-a", "c<-b")}
}

func TestLinearWorkflowRunsStepsInOrderAndCompletes(t *testing.T) {
	h := newHarness(t, linear3())
	eff := h.start("r1", "linear3", `{"n":1}`)
	if len(eff.Dispatches) != 1 || eff.Dispatches[0].Queue != "a" {
		t.Fatalf("start dispatched %v, want step a", h.stepsDispatched())
	}
	a := h.dispatched("a")
	if a.Partition != 3 || a.Instance != "r1" || a.Attempt != 1 || a.Workflow != "linear3" {
		t.Fatalf("dispatch of a = %+v", a)
	}
	jsonEq(t, "input of a", a.Input, `{"n":1}`)
	h.ok(a, `{"a":1}`)
	h.ok(h.dispatched("b"), `{"b":2}`)
	if len(h.completions) != 0 {
		t.Fatalf("completed before c ran")
	}
	h.ok(h.dispatched("c"), `{"c":3}`)
	if len(h.completions) != 1 {
		t.Fatalf("completions = %d, want 1", len(h.completions))
	}
	c := h.completions[0]
	if c.Status != schemas.Succeeded || c.Request != "r1" || c.Partition != 3 {
		t.Fatalf("completion = %+v", c)
	}
	jsonEq(t, "output", c.Output, `{"c":3}`)
	if r := h.store["r1"]; r.Status != schemas.StatusSucceeded || r.ExpireAt.IsZero() {
		t.Fatalf("root record after completion = %+v", r)
	}
}

func TestInputIsMergeOfDependenciesFirstWins(t *testing.T) {
	wf := &topology.Workflow{Name: "w", Graph: graph(nil, fastRetry, "a", "b", "c<-b,a", "d<-__start__,c")}
	h := newHarness(t, wf)
	h.start("r", "w", `{"x":"start","s":0}`)
	h.ok(h.dispatched("a"), `{"x":"a","k":"a"}`)
	h.ok(h.dispatched("b"), `{"x":"b","k":"b","only_b":true}`)
	jsonEq(t, "input of c", h.dispatched("c").Input, `{"x":"b","k":"b","only_b":true}`)
	h.ok(h.dispatched("c"), `{"x":"c","c":1}`)
	jsonEq(t, "input of d", h.dispatched("d").Input, `{"x":"start","s":0,"c":1}`)
	h.ok(h.dispatched("d"), `{"d":1}`)
	jsonEq(t, "output", h.completions[0].Output, `{"d":1}`)
}

func TestWordCountsFansOutOverSectionsAndJoinsInOrder(t *testing.T) {
	h := newHarness(t, wordCounts())
	h.start("book", "book-word-counts", `{"filename":"alice.txt"}`)
	if got := h.stepsDispatched(); strings.Join(got, " ") != "book-split#1 store-title#1" {
		t.Fatalf("start dispatched %v, want book-split and store-title", got)
	}
	h.ok(h.dispatched("store-title"), `{"filename":"alice.txt","title":"Alice"}`)
	h.ok(h.dispatched("book-split"), `{"filename":"alice.txt","sections":[{"start":0,"end":10},{"start":10,"end":20},{"start":20,"end":25}]}`)
	for i, want := range []string{
		`{"filename":"alice.txt","section":{"start":0,"end":10}}`,
		`{"filename":"alice.txt","section":{"start":10,"end":20}}`,
		`{"filename":"alice.txt","section":{"start":20,"end":25}}`,
	} {
		d := h.dispatched("section-counts[" + string(rune('0'+i)) + "]/segment-word-counts")
		jsonEq(t, d.Step, d.Input, want)
		if d.Queue != "segment-word-counts" || d.Instance != "book/section-counts["+string(rune('0'+i))+"]" {
			t.Fatalf("child dispatch %+v", d)
		}
	}
	// Children answer out of order; the join keeps element order.
	h.ok(h.dispatched("section-counts[2]/segment-word-counts"), `{"section":"counts-2"}`)
	h.ok(h.dispatched("section-counts[0]/segment-word-counts"), `{"section":"counts-0","extra":"first"}`)
	for _, d := range h.dispatches {
		if d.Step == "sum-splits" {
			t.Fatalf("join ran before every child finished")
		}
	}
	if ss := h.store["book"].Steps["section-counts"]; ss.Done != 0 || ss.Children != 3 {
		t.Fatalf("parent fan-out step = %+v: the parent must not be rewritten per child", ss)
	}
	if p := h.store["book/section-counts"]; p == nil || p.Kind != schemas.KindFanout || p.Done != 2 || p.Children != 3 {
		t.Fatalf("progress record = %+v", p)
	}
	h.ok(h.dispatched("section-counts[1]/segment-word-counts"), `{"section":"counts-1","extra":"second"}`)
	if _, ok := h.store["book/section-counts"]; ok {
		t.Fatal("progress record kept after the join")
	}
	if ss := h.store["book"].Steps["section-counts"]; ss.Done != 3 {
		t.Fatalf("parent after the join = %+v", ss)
	}
	jsonEq(t, "input of sum-splits", h.dispatched("sum-splits").Input,
		`{"sections":["counts-0","counts-1","counts-2"],"extra":"first"}`)
	h.ok(h.dispatched("sum-splits"), `{"sum_splits":"/tmp/counts.tsv"}`)
	c := h.completions[0]
	jsonEq(t, "output", c.Output, `{"sum_splits":"/tmp/counts.tsv","filename":"alice.txt","title":"Alice"}`)
	for k := range h.store {
		if k != "book" {
			t.Fatalf("child record %q kept after completion", k)
		}
	}
}

func TestElementWithUUIDGivesChildItsID(t *testing.T) {
	h := newHarness(t, wordCounts())
	h.start("r", "book-word-counts", `{}`)
	h.ok(h.dispatched("book-split"), `{"sections":[{"id":"6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab"},{"id":"not-a-uuid"}]}`)
	if got := h.dispatched("section-counts[0]/segment-word-counts").Instance; got != "6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab" {
		t.Fatalf("instance of child 0 = %q", got)
	}
	if got := h.dispatched("section-counts[1]/segment-word-counts").Instance; got != "r/section-counts[1]" {
		t.Fatalf("instance of child 1 = %q", got)
	}
}

func TestFanOutOverEmptyOrMissingListCompletesAtOnce(t *testing.T) {
	for _, tc := range []struct{ split, sumInput string }{
		{`{"sections":[]}`, `{"sections":[]}`},
		{`{"other":1}`, `{}`},
	} {
		h := newHarness(t, wordCounts())
		h.start("r", "book-word-counts", `{}`)
		h.ok(h.dispatched("book-split"), tc.split)
		jsonEq(t, "input of sum-splits after "+tc.split, h.dispatched("sum-splits").Input, tc.sumInput)
	}
}

func TestFanOutOverAValueThatIsNotAListFailsTheRequest(t *testing.T) {
	for _, tc := range []struct{ value, says string }{
		{`5`, "a number 5"},
		{`"abc"`, `a string "abc"`},
		{`{}`, "an object {}"},
		{`null`, "null"},
		{`true`, "a boolean true"},
	} {
		h := newHarness(t, wordCounts())
		h.start("r", "book-word-counts", `{}`)
		h.ok(h.dispatched("book-split"), `{"sections":`+tc.value+`}`)
		for _, d := range h.dispatches {
			if d.Step == "sum-splits" || strings.HasPrefix(d.Step, "section-counts[") {
				t.Fatalf("sections=%s: %s dispatched after a fan-out over a non-list", tc.value, d.Step)
			}
		}
		if len(h.completions) != 1 {
			t.Fatalf("sections=%s: %d completions, want the request failed", tc.value, len(h.completions))
		}
		c := h.completions[0]
		want := `fan-out over "sections" needs a list, but the step's input has ` + tc.says + ` there`
		if c.Status != schemas.Failed || c.Error == nil || c.Error.Step != "section-counts" || c.Error.Message != want {
			t.Fatalf("sections=%s: completion %+v, error %+v; want failed at section-counts with %q", tc.value, c, c.Error, want)
		}
	}
}

func TestNestedFanOutOverANonListFailsTheRequestAndDispatchesNothingMore(t *testing.T) {
	h := newHarness(t, nestedIDP())
	h.start("r", "idp", `{}`)
	h.ok(h.dispatched("split"), `{"documents":[{"n":1},{"n":2}]}`)
	before := len(h.dispatches)
	h.ok(h.dispatched("docs[0]/paginate"), `{"pages":"three"}`)
	if len(h.dispatches) != before {
		t.Fatalf("dispatched %v after the request failed", h.stepsDispatched()[before:])
	}
	if len(h.completions) != 1 || h.completions[0].Status != schemas.Failed || h.completions[0].Error.Step != "docs[0]/per-page" {
		t.Fatalf("completions = %+v", h.completions)
	}
	// Children stay (a retry resumes them) until the request expires.
	for h.fireDue() {
	}
	if len(h.store) != 0 {
		t.Fatalf("records left after expiry: %v", slices.Collect(maps.Keys(h.store)))
	}
}

func TestJoinLeavesOutChildrenWithoutTheSingularKey(t *testing.T) {
	h := newHarness(t, wordCounts())
	h.start("r", "book-word-counts", `{}`)
	h.ok(h.dispatched("book-split"), `{"sections":[1,2,3]}`)
	h.ok(h.dispatched("section-counts[0]/segment-word-counts"), `{"section":"c0"}`)
	h.ok(h.dispatched("section-counts[1]/segment-word-counts"), `{"other":"from-1"}`)
	h.ok(h.dispatched("section-counts[2]/segment-word-counts"), `{"section":"c2","other":"from-2"}`)
	jsonEq(t, "input of sum-splits", h.dispatched("sum-splits").Input, `{"sections":["c0","c2"],"other":"from-1"}`)
}

func nestedIDP() *topology.Workflow {
	tasks := map[string]*topology.Task{}
	tasks["pages"] = task("pages", "pages", graph(tasks, fastRetry, "ocr", "layout<-ocr"))
	tasks["documents"] = task("documents", "documents", graph(tasks, fastRetry, "paginate", "per-page=pages<-paginate", "classify<-per-page"))
	return &topology.Workflow{Name: "idp", Tasks: tasks, Graph: graph(tasks, fastRetry, "split", "docs=documents<-split", "assemble<-docs")}
}

func TestNestedFanOutJoinsInnerThenOuter(t *testing.T) {
	h := newHarness(t, nestedIDP())
	h.start("r", "idp", `{"bundle":"b1"}`)
	h.ok(h.dispatched("split"), `{"bundle":"b1","documents":[{"n":2},{"n":1}]}`)
	jsonEq(t, "paginate input", h.dispatched("docs[1]/paginate").Input, `{"bundle":"b1","document":{"n":1}}`)
	h.ok(h.dispatched("docs[0]/paginate"), `{"bundle":"b1","pages":[1,2]}`)
	h.ok(h.dispatched("docs[1]/paginate"), `{"bundle":"b1","pages":[3]}`)
	d := h.dispatched("docs[0]/per-page[1]/ocr")
	jsonEq(t, "ocr input", d.Input, `{"bundle":"b1","page":2}`)
	for _, p := range []string{"docs[0]/per-page[0]", "docs[0]/per-page[1]", "docs[1]/per-page[0]"} {
		h.ok(h.dispatched(p+"/ocr"), `{"text":"t"}`)
	}
	for i, p := range []string{"docs[0]/per-page[0]", "docs[0]/per-page[1]", "docs[1]/per-page[0]"} {
		h.ok(h.dispatched(p+"/layout"), fmt.Sprintf(`{"page":"p%d"}`, i))
	}
	for _, d := range h.dispatches {
		if d.Step == "assemble" {
			t.Fatal("outer join ran before the documents were classified")
		}
	}
	jsonEq(t, "classify input of doc 0", h.dispatched("docs[0]/classify").Input, `{"pages":["p0","p1"]}`)
	jsonEq(t, "classify input of doc 1", h.dispatched("docs[1]/classify").Input, `{"pages":["p2"]}`)
	h.ok(h.dispatched("docs[1]/classify"), `{"document":"letter"}`)
	if _, ok := h.store["r/docs[1]/per-page[0]"]; ok {
		t.Fatal("a finished child kept its own children's records")
	}
	h.ok(h.dispatched("docs[0]/classify"), `{"document":"invoice"}`)
	jsonEq(t, "assemble input", h.dispatched("assemble").Input, `{"documents":["invoice","letter"]}`)
	h.ok(h.dispatched("assemble"), `{"result":"done"}`)
	if len(h.completions) != 1 || h.completions[0].Status != schemas.Succeeded {
		t.Fatalf("completions = %+v", h.completions)
	}
	if len(h.store) != 1 {
		t.Fatalf("records left after completion: %d", len(h.store))
	}
}

func TestRetryableErrorIsRetriedAfterBackoffThenFailsTheRequest(t *testing.T) {
	h := newHarness(t, linear3())
	h.start("r", "linear3", `{}`)
	h.ok(h.dispatched("a"), `{}`)
	b1 := h.dispatched("b")
	eff := h.fail(b1, "model not loaded", true)
	if len(eff.Dispatches) != 0 || len(eff.SetTimers) != 1 || eff.SetTimers[0].Kind != TimerRetry {
		t.Fatalf("first failure effects = %+v", eff)
	}
	if got := eff.SetTimers[0].At.Sub(h.now); got != time.Second {
		t.Fatalf("first backoff = %v, want 1s", got)
	}
	h.fireDue()
	b2 := h.dispatched("b")
	if b2.Attempt != 2 {
		t.Fatalf("after backoff attempt = %d, want 2", b2.Attempt)
	}
	// The late answer of attempt 1 must not count.
	if eff := h.ok(b1, `{"late":true}`); eff.Ignored == "" || len(eff.Writes) != 0 {
		t.Fatalf("stale result changed state: %+v", eff)
	}
	h.fail(b2, "model not loaded", true)
	before := h.now
	h.fireDue()
	if got := h.now.Sub(before); got != 2*time.Second {
		t.Fatalf("second backoff = %v, want 2s", got)
	}
	h.fail(h.dispatched("b"), "model not loaded", true)
	if len(h.completions) != 1 {
		t.Fatalf("completions = %d after attempts ran out", len(h.completions))
	}
	c := h.completions[0]
	if c.Status != schemas.Failed || c.Error.Step != "b" || c.Error.Attempt != 3 || !strings.Contains(c.Error.Message, "model not loaded") {
		t.Fatalf("completion = %+v error %+v", c, c.Error)
	}
}

func TestNonRetryableErrorFailsAtOnce(t *testing.T) {
	h := newHarness(t, wordCounts())
	h.start("r", "book-word-counts", `{}`)
	h.ok(h.dispatched("book-split"), `{"sections":[1,2]}`)
	h.fail(h.dispatched("section-counts[1]/segment-word-counts"), "corrupt page", false)
	c := h.completions[0]
	if c.Status != schemas.Failed || c.Error.Step != "section-counts[1]/segment-word-counts" || c.Error.Message != "corrupt page" {
		t.Fatalf("completion error = %+v", c.Error)
	}
	n := len(h.dispatches)
	h.ok(h.dispatched("section-counts[0]/segment-word-counts"), `{}`)
	h.ok(h.dispatched("store-title"), `{}`)
	if len(h.dispatches) != n || len(h.completions) != 1 {
		t.Fatal("a failed request kept advancing")
	}
	// The children stay for a retry, marked: the failed one failed, the
	// other cancelled.
	if st := h.store["r/section-counts[1]"].Status; st != schemas.StatusFailed {
		t.Fatalf("child holding the failed step is %s", st)
	}
	if st := h.store["r/section-counts[0]"].Status; st != schemas.StatusCancelled {
		t.Fatalf("child interrupted by the failure is %s, want cancelled (its late result is ignored)", st)
	}
	for h.fireDue() {
	}
	if len(h.store) != 0 {
		t.Fatalf("records left after expiry: %v", slices.Collect(maps.Keys(h.store)))
	}
}

func TestTimeoutIsARetryableFailure(t *testing.T) {
	wf := linear3()
	wf.Graph.ByName["a"].Timeout = 5 * time.Second
	h := newHarness(t, wf)
	h.start("r", "linear3", `{}`)
	a1 := h.dispatched("a")
	if !a1.Deadline.Equal(h.now.Add(5 * time.Second)) {
		t.Fatalf("deadline = %v", a1.Deadline)
	}
	h.fireDue() // the timeout
	if h.store["r"].Steps["a"].Status != schemas.StepWaiting || !strings.Contains(h.store["r"].Steps["a"].Error, "timed out") {
		t.Fatalf("after timeout step a = %+v", h.store["r"].Steps["a"])
	}
	h.fireDue() // the retry
	a2 := h.dispatched("a")
	if a2.Attempt != 2 {
		t.Fatalf("attempt after timeout = %d", a2.Attempt)
	}
	eff := h.ok(a2, `{}`)
	if len(eff.ClearTimers) != 1 || eff.ClearTimers[0].Kind != TimerTimeout {
		t.Fatalf("success did not clear its timeout: %+v", eff.ClearTimers)
	}
}

func TestCancelStopsDispatchingAndCompletesOnce(t *testing.T) {
	h := newHarness(t, linear3())
	h.start("r", "linear3", `{}`)
	eff := h.apply(Event{Kind: EventCancel, Request: "r", Reason: "user left"})
	if len(eff.Completions) != 1 || eff.Completions[0].Status != schemas.Cancelled || eff.Completions[0].Error.Message != "cancelled: user left" {
		t.Fatalf("cancel effects = %+v", eff)
	}
	if eff := h.ok(h.dispatched("a"), `{}`); len(eff.Dispatches) != 0 || eff.Ignored == "" {
		t.Fatalf("result after cancel advanced: %+v", eff)
	}
	if eff := h.apply(Event{Kind: EventCancel, Request: "r"}); len(eff.Completions) != 0 {
		t.Fatal("second cancel completed again")
	}
}

func TestIgnoredEvents(t *testing.T) {
	h := newHarness(t, linear3())
	h.start("r", "linear3", `{"v":1}`)
	a := h.dispatched("a")
	for name, ev := range map[string]Event{
		"duplicate start":      {Kind: EventStart, Request: "r", Workflow: "linear3", Input: json.RawMessage(`{"v":2}`)},
		"unknown request":      {Kind: EventResult, Request: "nope", Step: "a", Attempt: 1, Output: json.RawMessage(`{}`)},
		"unknown step":         {Kind: EventResult, Request: "r", Step: "zzz", Attempt: 1, Output: json.RawMessage(`{}`)},
		"step not started":     {Kind: EventResult, Request: "r", Step: "c", Attempt: 1, Output: json.RawMessage(`{}`)},
		"future attempt":       {Kind: EventResult, Request: "r", Step: "a", Attempt: 2, Output: json.RawMessage(`{}`)},
		"unknown child":        {Kind: EventResult, Request: "r", Step: "x[0]/a", Attempt: 1, Output: json.RawMessage(`{}`)},
		"stale timer":          {Kind: EventTimer, Request: "r", Step: "a", Attempt: 1, Timer: TimerRetry},
		"expiry while running": {Kind: EventTimer, Request: "r", Timer: TimerExpire},
		"unknown kind":         {Kind: 99, Request: "r"},
	} {
		eff := h.apply(ev)
		if eff.Ignored == "" || len(eff.Writes)+len(eff.Dispatches)+len(eff.Completions)+len(eff.SetTimers) != 0 {
			t.Errorf("%s: effects %+v, want ignored", name, eff)
		}
	}
	h.ok(a, `{"a":1}`)
	if eff := h.ok(a, `{"a":1}`); eff.Ignored == "" || len(eff.Dispatches) != 0 {
		t.Fatalf("duplicate result advanced again: %+v", eff)
	}
	if n := len(h.dispatches); n != 2 {
		t.Fatalf("dispatches = %v", h.stepsDispatched())
	}
}

func TestBadStartsFailWithAReason(t *testing.T) {
	for _, tc := range []struct{ id, workflow, input, want string }{
		{"r1", "nope", `{}`, `unknown workflow "nope"`},
		{"r2", "linear3", `[1,2]`, "invalid input: not a JSON object"},
		{"r3", "linear3", `{"a":`, "invalid input: not valid JSON"},
		{"r4", "linear3", `"x"`, "invalid input: not a JSON object"},
		{"r5", "linear3", `{"big":"` + strings.Repeat("x", DefaultMaxPayload) + `"}`, "over the"},
		{"bad/id", "linear3", `{}`, "invalid request id"},
		{"", "linear3", `{}`, "invalid request id"},
	} {
		h := newHarness(t, linear3())
		eff := h.start(tc.id, tc.workflow, tc.input)
		if len(eff.Completions) != 1 || eff.Completions[0].Status != schemas.Failed || !strings.Contains(eff.Completions[0].Error.Message, tc.want) {
			t.Errorf("start %q %q: completions %+v, want failure containing %q", tc.id, tc.workflow, eff.Completions, tc.want)
			continue
		}
		if len(eff.Dispatches) != 0 {
			t.Errorf("start %q dispatched", tc.id)
		}
		if tc.id != "" && !strings.Contains(tc.id, "/") {
			if again := h.start(tc.id, "linear3", `{}`); again.Ignored == "" {
				t.Errorf("a failed start's id %q can be started again while remembered", tc.id)
			}
		}
	}
}

func TestInvalidResultIsARetryableStepError(t *testing.T) {
	h := newHarness(t, linear3())
	h.start("r", "linear3", `{}`)
	for i, bad := range []string{`not json`, `[1]`, `{"a":`} {
		h.ok(h.dispatched("a"), bad)
		if i < 2 {
			h.fireDue()
		}
	}
	c := h.completions[0]
	if c.Status != schemas.Failed || !strings.Contains(c.Error.Message, "invalid result: not valid JSON") || c.Error.Attempt != 3 {
		t.Fatalf("completion = %+v %+v", c, c.Error)
	}
	if !strings.Contains(h.store["r"].Steps["a"].Error, "invalid result") {
		t.Fatalf("step error = %q", h.store["r"].Steps["a"].Error)
	}
}

func TestExpiryForgetsFinishedRequest(t *testing.T) {
	h := newHarness(t, linear3())
	h.start("r", "linear3", `{}`)
	h.apply(Event{Kind: EventCancel, Request: "r"})
	for h.fireDue() {
	}
	if _, ok := h.store["r"]; ok {
		t.Fatal("finished request not forgotten at expiry")
	}
	if eff := h.start("r", "linear3", `{}`); len(eff.Dispatches) != 1 {
		t.Fatal("after expiry the id cannot be started again")
	}
}

func TestRecordEncodingRoundTripsAndRejectsNewerVersions(t *testing.T) {
	h := newHarness(t, wordCounts())
	h.start("r", "book-word-counts", `{"f":1}`)
	h.ok(h.dispatched("book-split"), `{"sections":[1]}`)
	for key, r := range h.store {
		b := schemas.EncodeRecord(r)
		if !strings.HasPrefix(string(b), fmt.Sprintf(`{"v":%d,`, schemas.RecordVersion)) {
			t.Fatalf("%s encodes without the version first: %s", key, b)
		}
		back, err := schemas.DecodeRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if string(schemas.EncodeRecord(back)) != string(b) {
			t.Fatalf("%s does not round-trip:\n%s\n%s", key, b, schemas.EncodeRecord(back))
		}
	}
	if _, err := schemas.DecodeRecord([]byte(fmt.Sprintf(`{"v":%d,"request":"r"}`, schemas.RecordVersion+1))); !errors.Is(err, schemas.ErrRecordVersion) {
		t.Fatalf("newer version: err = %v", err)
	}
	if _, err := schemas.DecodeRecord([]byte(`{`)); err == nil {
		t.Fatal("garbage decoded")
	}
}

func TestTimersOfRestoredRecordsMatchTimersSet(t *testing.T) {
	wf := linear3()
	wf.Graph.ByName["a"].Timeout = time.Minute
	h := newHarness(t, wf, wordCounts())
	h.start("r1", "linear3", `{}`)
	h.start("r2", "book-word-counts", `{}`)
	h.fail(h.dispatched("book-split"), "x", true)
	h.start("r3", "linear3", `{}`)
	h.apply(Event{Kind: EventCancel, Request: "r3"})
	restored := map[string]Timer{}
	for _, r := range h.store {
		back, err := schemas.DecodeRecord(schemas.EncodeRecord(r))
		if err != nil {
			t.Fatal(err)
		}
		for _, tm := range TimersOf(back) {
			restored[timerID(tm)] = tm
		}
	}
	if len(restored) != len(h.timers) {
		t.Fatalf("restored %d timers, live %d:\n%v\n%v", len(restored), len(h.timers), restored, h.timers)
	}
	for id, tm := range h.timers {
		if r, ok := restored[id]; !ok || !r.At.Equal(tm.At) {
			t.Fatalf("timer %s: restored %+v, live %+v", id, r, tm)
		}
	}
}

// The hand-written encoder must write what encoding/json writes for the
// tagged struct: the same JSON value (raw payloads are copied as they came,
// where encoding/json would compact and re-escape them).
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	wf := linear3()
	wf.Graph.ByName["b"].Timeout = time.Minute
	h := newHarness(t, wf, wordCounts())
	h.start("r1", "linear3", `{"text":"quote \" backslash \\ <tag> & \u2028 tab\t","n":[1, 2]}`)
	h.ok(h.dispatched("a"), `{"a": "é ünïcode \u0001"}`)
	h.fail(h.dispatched("b"), "bad\nthing \"quoted\" <x>", true)
	h.start("r2", "book-word-counts", `{}`)
	h.ok(h.dispatched("book-split"), `{"sections":[{"id":"6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab"},2]}`)
	h.start("r3", "nope", `{}`)
	records := slices.Collect(maps.Values(h.store))
	records = append(records, &schemas.Record{Request: "x", Status: schemas.Running, Error: &schemas.Failure{Message: "m"}, Steps: map[string]*schemas.StepState{}})
	records = append(records, &schemas.Record{Request: "bad utf8 \xff\xfe", Status: schemas.Running})
	for _, r := range records {
		got := schemas.EncodeRecord(r)
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("Encode wrote invalid JSON %s: %v", got, err)
		}
		_ = json.Unmarshal(want, &w)
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("Encode differs from encoding/json:\n got  %s\n want %s", got, want)
		}
	}
}

// A finishing child writes itself and the small progress record, never
// its parent (whose step outputs may be large), until the join.
func TestChildResultDoesNotRewriteParent(t *testing.T) {
	h := newHarness(t, wordCounts())
	h.start("r", "book-word-counts", `{}`)
	h.ok(h.dispatched("book-split"), `{"big":"`+strings.Repeat("x", 10000)+`","sections":[1,2,3]}`)
	for i, want := range [][]string{{"r/section-counts[0]", "r/section-counts"}, {"r/section-counts[1]", "r/section-counts"}} {
		eff := h.ok(h.dispatched(fmt.Sprintf("section-counts[%d]/segment-word-counts", i)), `{"section":1}`)
		var keys []string
		for _, w := range eff.Writes {
			keys = append(keys, w.Key)
		}
		if !slices.Equal(keys, want) {
			t.Fatalf("child %d wrote %v, want %v", i, keys, want)
		}
	}
}
