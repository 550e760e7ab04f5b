package idp

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/worker"
)

func call(t *testing.T, hs map[string]worker.Handler, queue string, input any) (json.RawMessage, error) {
	t.Helper()
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	return hs[queue](context.Background(), &worker.Task{Step: queue, Queue: queue, Input: in})
}

// step runs queue's handler and decodes its output into a map of raw
// fields, failing the test on an error.
func step(t *testing.T, hs map[string]worker.Handler, queue string, input any) map[string]json.RawMessage {
	t.Helper()
	out, err := call(t, hs, queue, input)
	if err != nil {
		t.Fatalf("%s: %v", queue, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("%s: output is not an object: %s", queue, out)
	}
	return m
}

func list(t *testing.T, raw json.RawMessage) []json.RawMessage {
	t.Helper()
	var l []json.RawMessage
	if err := json.Unmarshal(raw, &l); err != nil {
		t.Fatalf("not a list: %s", raw)
	}
	return l
}

// without returns m minus key, plus extra: a fan-out child's input.
func without(m map[string]json.RawMessage, key string, extra map[string]json.RawMessage) map[string]json.RawMessage {
	out := maps.Clone(m)
	delete(out, key)
	maps.Copy(out, extra)
	return out
}

// pipeline runs the whole workflow through the handlers, joining the
// fan-outs as the processor does (children's element keys collected in
// order, their other keys merged, first child wins).
func pipeline(t *testing.T, hs map[string]worker.Handler, input any) Assembled {
	t.Helper()
	split := step(t, hs, QueueSplit, input)
	var docOuts []json.RawMessage
	for _, doc := range list(t, split["documents"]) {
		rendered := step(t, hs, QueueRender, without(split, "documents", map[string]json.RawMessage{"document": doc}))
		joined := map[string]json.RawMessage{}
		var pages []json.RawMessage
		for _, scan := range list(t, rendered["pages"]) {
			read := step(t, hs, QueueOCR, without(rendered, "pages", map[string]json.RawMessage{"page": scan}))
			laid := step(t, hs, QueueLayout, read)
			pages = append(pages, laid["page"])
			for k, v := range laid {
				if _, seen := joined[k]; !seen && k != "page" {
					joined[k] = v
				}
			}
		}
		joined["pages"], _ = json.Marshal(pages)
		classified := step(t, hs, QueueClassify, joined)
		extracted := step(t, hs, QueueExtract, classified)
		docOuts = append(docOuts, extracted["document"])
	}
	out, err := call(t, hs, QueueAssemble, map[string]any{"documents": docOuts})
	if err != nil {
		t.Fatal(err)
	}
	var a Assembled
	if err := json.Unmarshal(out, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDefinitionsMatchHandlers(t *testing.T) {
	set, err := Definitions()
	if err != nil {
		t.Fatal(err)
	}
	wf := set.Lookup(WorkflowName)
	if wf == nil {
		t.Fatalf("no workflow %q", WorkflowName)
	}
	if got, want := set.Queues(), slices.Sorted(maps.Keys(Handlers(WithLatency(0)))); !slices.Equal(got, want) {
		t.Errorf("workflow queues %v, handlers for %v", got, want)
	}
	// The nesting the example exists to show: documents over pages.
	docs := wf.Graph.ByName["documents"]
	if docs == nil || docs.Task == nil || docs.Task.ItemListKey != "documents" {
		t.Fatal("step documents is not a fan-out over documents")
	}
	pages := docs.Task.Graph.ByName["pages"]
	if pages == nil || pages.Task == nil || pages.Task.ItemListKey != "pages" || pages.Task.ItemKey != "page" {
		t.Fatal("process-document has no fan-out pages over pages")
	}
	// The failure handling and the review of unsure documents.
	if pages.Tolerate == nil {
		t.Error("the pages fan-out tolerates no failed page")
	}
	if st := wf.Graph.OnFailure; st == nil || st.Queue != QueueNotify {
		t.Errorf("onFailure %+v, want the notify queue", st)
	}
	review := docs.Task.Graph.ByName["review"]
	if review == nil || review.Wait == nil || review.Wait.Signal != "review" || review.When == nil ||
		review.Wait.Timeout <= 0 || string(review.Wait.OnTimeout) == "" {
		t.Fatalf("process-document has no review step waiting for the review signal with a timeout: %+v", review)
	}
	if extract := docs.Task.Graph.ByName["extract"]; !slices.Contains(extract.Depends, "review") {
		t.Errorf("extract depends on %v, not on review", extract.Depends)
	}
	// No heartbeat timeout on OCR: its clock starts at dispatch, so it
	// would count a backlog's queue wait and a broker restart against a
	// worker that is fine (docs/yaml-reference.md).
	if ocr := pages.Task.Graph.ByName["ocr"]; ocr.HeartbeatTimeout != 0 {
		t.Errorf("ocr: heartbeat timeout %v; the example sets none", ocr.HeartbeatTimeout)
	}
}

func TestDefaultBundle(t *testing.T) {
	hs := Handlers(WithLatency(0))
	got := pipeline(t, hs, map[string]any{})
	bundle := DefaultBundle()
	if len(got.Documents) != len(bundle.Documents) || got.Summary.Documents != len(bundle.Documents) {
		t.Fatalf("%d documents (summary %d), bundle has %d", len(got.Documents), got.Summary.Documents, len(bundle.Documents))
	}
	wantClasses := []string{"invoice", "contract", "letter"}
	totalPages := 0
	for i, d := range got.Documents {
		b := bundle.Documents[i]
		words := 0
		for _, p := range b.Pages {
			words += len(strings.Fields(p))
		}
		totalPages += len(b.Pages)
		if d.Name != b.Name || d.Pages != len(b.Pages) || d.Words != words || d.Class != wantClasses[i] {
			t.Errorf("document %d: %s, %s, %d pages, %d words; want %s, %s, %d, %d", i, d.Name, d.Class, d.Pages, d.Words, b.Name, wantClasses[i], len(b.Pages), words)
		}
		if d.Confidence < 0.90 || d.Confidence > 0.99 {
			t.Errorf("document %d: confidence %v outside [0.90, 0.99]", i, d.Confidence)
		}
	}
	if got.Summary.Pages != totalPages {
		t.Errorf("summary pages %d, want %d", got.Summary.Pages, totalPages)
	}
	if want := map[string]int{"invoice": 1, "contract": 1, "letter": 1}; !maps.Equal(got.Summary.Classes, want) {
		t.Errorf("classes %v, want %v", got.Summary.Classes, want)
	}
	want := []map[string]string{
		{"invoice_number": "INV-2026-0042", "date": "2026-09-01", "total": "EUR 115.80", "due_date": "2026-10-01", "bill_to": "Harrow Light Trust"},
		{"party_a": "Harrow Light Trust", "party_b": "Orla Brann", "effective_date": "2026-10-15"},
		{"recipient": "Mr Tobias Wren", "sender": "Mara Ellis", "date": "2026-09-20"},
	}
	for i, d := range got.Documents {
		if !maps.Equal(d.Fields, want[i]) {
			t.Errorf("document %d fields %v, want %v", i, d.Fields, want[i])
		}
	}
	// Deterministic: a second run gives the same result.
	again := pipeline(t, hs, map[string]any{})
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(again)
	if string(a) != string(b) {
		t.Errorf("two runs differ:\n%s\n%s", a, b)
	}
}

func TestOwnBundle(t *testing.T) {
	hs := Handlers(WithLatency(0))
	in := map[string]any{"bundle": map[string]any{"documents": []map[string]any{
		{"pages": []string{"a note\n\nwith two blocks", "and\nthree\nlines", "x"}},
		{"name": "memo", "pages": []string{"nothing to see"}},
	}}}
	got := pipeline(t, hs, in)
	if len(got.Documents) != 2 {
		t.Fatalf("documents %+v", got.Documents)
	}
	d := got.Documents[0]
	if d.Name != "document-1" || d.Pages != 3 || d.Words != 9 || d.Class != ClassOther || len(d.Fields) != 0 {
		t.Errorf("first document %+v", d)
	}
	if got.Documents[1].Name != "memo" || got.Summary.Pages != 4 || got.Summary.Classes[ClassOther] != 2 {
		t.Errorf("result %+v", got)
	}
	// An empty bundle assembles to nothing.
	if empty := pipeline(t, hs, map[string]any{"bundle": map[string]any{"documents": []any{}}}); len(empty.Documents) != 0 || empty.Summary.Documents != 0 {
		t.Errorf("empty bundle gave %+v", empty)
	}
}

func TestLayout(t *testing.T) {
	p := Layout(Page{Text: "one two\nthree\n\n\n  four  \n \nfive six seven"})
	if p.Blocks != 3 || p.Lines != 4 || p.Words != 7 {
		t.Errorf("layout %+v, want 3 blocks, 4 lines, 7 words", p)
	}
}

func TestClassify(t *testing.T) {
	cases := map[string]string{
		"INVOICE no. 7, total due: 3.00":               "invoice",
		"This agreement binds the parties for a term.": "contract",
		"Dear Sam, ... Sincerely, Al":                  "letter",
		"determined termite":                           ClassOther, // "term" only inside words
		"":                                             ClassOther,
	}
	for text, want := range cases {
		if got := Classify(text); got != want {
			t.Errorf("Classify(%q) = %s, want %s", text, got, want)
		}
	}
	// The confidence: the winning class's share of the keywords (the
	// TypeScript worker's test has the same table).
	for _, c := range []struct {
		text, class string
		confidence  float64
	}{
		{"INVOICE no. 7, total due: 3.00", "invoice", 1},
		{"Dear party, the invoice: sincerely yours", "letter", 0.6},
		{"agreement invoice", "invoice", 0.5},
		{"Dear Al, the term: sincerely", "letter", 0.67},
		{"determined termite", ClassOther, 1},
	} {
		if class, conf := ClassifyConfidence(c.text); class != c.class || conf != c.confidence {
			t.Errorf("ClassifyConfidence(%q) = %s %v, want %s %v", c.text, class, conf, c.class, c.confidence)
		}
	}
	for _, c := range classNames() {
		if _, ok := fieldPatterns[c]; !ok && c != ClassOther {
			t.Errorf("class %s has no field patterns", c)
		}
	}
}

func TestOCRChecksAndIsStable(t *testing.T) {
	hs := Handlers(WithLatency(0))
	rendered := step(t, hs, QueueRender, map[string]any{"document": Document{Name: "d", Pages: []string{"hello"}}})
	scans := list(t, rendered["pages"])
	var s Scan
	if err := json.Unmarshal(scans[0], &s); err != nil {
		t.Fatal(err)
	}
	p1, err := OCR(s)
	if err != nil || p1.Text != "hello" || p1.Number != 1 {
		t.Fatalf("OCR = %+v, %v", p1, err)
	}
	if p2, _ := OCR(s); p2 != p1 {
		t.Errorf("OCR not deterministic: %+v then %+v", p1, p2)
	}
	s.Checksum = Checksum("other")
	if _, err := call(t, hs, QueueOCR, map[string]any{"page": s}); err == nil || !worker.IsPermanent(err) || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("corrupt page: %v, want a permanent checksum error", err)
	}
}

func TestBadInputsArePermanent(t *testing.T) {
	hs := Handlers(WithLatency(0))
	cases := []struct {
		queue string
		input any
		says  string
	}{
		{QueueSplit, map[string]any{"bundle": "x"}, `{"bundle": {"documents"`},
		{QueueSplit, map[string]any{"bundle": []int{1}}, `{"bundle": {"documents"`},
		{QueueSplit, map[string]any{"bundle": map[string]any{"documents": []any{map[string]any{"name": "a"}}}}, "document 1 (a) has no pages"},
		{QueueSplit, map[string]any{"bundle": map[string]any{"documents": []any{map[string]any{"pages": []int{1}}}}}, "bundle"},
		{QueueRender, map[string]any{}, `needs a "document"`},
		{QueueOCR, map[string]any{}, `needs a "page"`},
		{QueueLayout, map[string]any{"page": 3}, "page"},
		{QueueClassify, map[string]any{"pages": []any{nil}}, "page 1 has no layout"},
		{QueueExtract, map[string]any{"pages": []any{}}, `needs the "class"`},
		{QueueAssemble, map[string]any{"documents": []any{nil}}, "document 1 has no result"},
	}
	for _, c := range cases {
		_, err := call(t, hs, c.queue, c.input)
		if err == nil || !worker.IsPermanent(err) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s %v: %v, want a permanent error mentioning %q", c.queue, c.input, err, c.says)
		}
	}
}

func TestLatency(t *testing.T) {
	hs := Handlers(WithLatency(20 * time.Millisecond))
	start := time.Now()
	if _, err := call(t, hs, QueueRender, map[string]any{"document": Document{Name: "d", Pages: []string{"p"}}}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("render took %v, want at least the 20ms latency", d)
	}
	// A cancelled task stops waiting and reports a retryable error: with
	// an hour of latency, only the cancellation can end the call.
	slow := Handlers(WithLatency(time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() {
		_, err := slow[QueueOCR](ctx, &worker.Task{Input: json.RawMessage(`{}`)})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || worker.IsPermanent(err) {
			t.Errorf("cancelled OCR: %v, want the context's error, retryable", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("cancelled OCR kept sleeping")
	}
}

func TestLatencyFromEnv(t *testing.T) {
	t.Setenv(LatencyEnv, "")
	if d, err := LatencyFromEnv(); d != DefaultLatency || err != nil {
		t.Errorf("unset: %v %v", d, err)
	}
	t.Setenv(LatencyEnv, "0")
	if d, err := LatencyFromEnv(); d != 0 || err != nil {
		t.Errorf("0: %v %v", d, err)
	}
	t.Setenv(LatencyEnv, "250ms")
	if d, err := LatencyFromEnv(); d != 250*time.Millisecond || err != nil {
		t.Errorf("250ms: %v %v", d, err)
	}
	if c := newConfig(nil); c.latency != 250*time.Millisecond {
		t.Errorf("handlers ignore the environment: %v", c.latency)
	}
	if c := newConfig([]Option{WithLatency(0)}); c.latency != 0 {
		t.Errorf("WithLatency(0) does not win over the environment: %v", c.latency)
	}
	t.Setenv(LatencyEnv, "soon")
	if d, err := LatencyFromEnv(); d != DefaultLatency || err == nil || !strings.Contains(err.Error(), LatencyEnv) {
		t.Errorf("bad value: %v %v", d, err)
	}
}
