package processors

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
)

const tolerant = `
workflows:
  - name: pages
    onFailure: notify
    tasks:
      - name: page
        itemListKey: pages
        steps:
          - {name: ocr, retry: {maxAttempts: 1}}
    steps:
      - name: split
      - name: fan
        task: page
        depends: [split]
        tolerate: {failures: 1}
      - name: assemble
        depends: [fan]
`

// TestFailureHandlingEndToEnd: through the broker, a fan-out tolerates one
// failed page and its join receives it under pagesFailed; a second failed
// page fails the request, after the onFailure handler got the failure.
func TestFailureHandlingEndToEnd(t *testing.T) {
	e := newEnv(t, tolerant, 2)
	comps := e.watchCompletions()
	var mu sync.Mutex
	joins := map[string]map[string]any{}
	handled := map[string]map[string]any{}
	e.startWorker(func(tk task) ([]*kgo.Record, bool) {
		switch {
		case tk.step == "split":
			return []*kgo.Record{okResult(tk, map[string]any{"pages": []int{1, 2, 3}, "bad": tk.input["bad"]})}, false
		case tk.step == topology.OnFailureStep:
			mu.Lock()
			handled[tk.request] = tk.input
			mu.Unlock()
			return []*kgo.Record{okResult(tk, map[string]any{"notified": true})}, false
		case tk.step == "assemble":
			mu.Lock()
			joins[tk.request] = tk.input
			mu.Unlock()
			return []*kgo.Record{okResult(tk, map[string]any{"assembled": true})}, false
		}
		// ocr: fail the pages the request's input lists as bad.
		bad, _ := tk.input["bad"].([]any)
		if slices.Contains(bad, tk.input["page"]) {
			return []*kgo.Record{errResult(tk, fmt.Sprintf("page %v unreadable", tk.input["page"]), false)}, false
		}
		return []*kgo.Record{okResult(tk, map[string]any{"page": fmt.Sprintf("text %v", tk.input["page"])})}, false
	})
	e.startProcessor("p1")
	e.startWith("pages", map[string]map[string]any{
		"one-bad": {"bad": []int{2}},
		"two-bad": {"bad": []int{1, 3}},
	})
	comps.wait(t, []string{"one-bad", "two-bad"}, 30*time.Second)

	if c, n := comps.get("one-bad"); n != 1 || c.Status != schemas.Succeeded || string(c.Output) != `{"assembled":true}` {
		t.Fatalf("one-bad: %d completions, last %+v", n, c)
	}
	mu.Lock()
	defer mu.Unlock()
	got, _ := json.Marshal(joins["one-bad"])
	want := `{"pages":["text 1","text 3"],"pagesFailed":[{"attempt":1,"error":"page 2 unreadable","id":"one-bad/fan[1]","index":1,"step":"fan[1]/ocr"}]}`
	if string(got) != want {
		t.Errorf("join input %s\nwant %s", got, want)
	}
	if handled["one-bad"] != nil {
		t.Errorf("the handler ran for a request within its bound: %v", handled["one-bad"])
	}

	c, n := comps.get("two-bad")
	if n != 1 || c.Status != schemas.Failed || c.Error == nil || c.Error.Step != "fan[2]/ocr" || c.Error.Message != "page 3 unreadable" {
		t.Fatalf("two-bad: %d completions, last %+v", n, c)
	}
	if joins["two-bad"] != nil {
		t.Errorf("the join ran beyond the bound: %v", joins["two-bad"])
	}
	h, _ := json.Marshal(handled["two-bad"])
	if want := `{"failure":{"attempt":1,"error":"page 3 unreadable","step":"fan[2]/ocr"},"input":{"bad":[1,3]},"outputs":{"split":{"bad":[1,3],"pages":[1,2,3]}}}`; string(h) != want {
		t.Errorf("handler input %s\nwant %s", h, want)
	}
}
