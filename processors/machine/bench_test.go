package machine

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stepwise-run/stepwise/schemas"
)

// BenchmarkLinear3 measures one request through three sequential steps: a
// start and three results, four transitions per operation. It also reports
// the encoded state of a request in flight (after its first step).
func BenchmarkLinear3(b *testing.B) {
	h := newHarness(b, linear3())
	in := json.RawMessage(`{"doc":"d-1","lang":"en"}`)
	out := json.RawMessage(`{"score":0.93,"label":"invoice"}`)
	var stateBytes int
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("req-%d", i)
		d := h.m.Apply(h.store, Event{Kind: EventStart, Request: id, Workflow: "linear3", Input: in}, h.now)
		h.commit(d)
		for s := range 3 {
			disp := d.Dispatches[0]
			d = h.m.Apply(h.store, Event{Kind: EventResult, Request: id, Step: disp.Step, Attempt: 1, Output: out}, h.now)
			h.commit(d)
			if s == 0 && i == 0 {
				stateBytes = len(schemas.EncodeRecord(h.store[id].Clone()))
			}
		}
		delete(h.store, id)
	}
	b.ReportMetric(float64(4*b.N)/b.Elapsed().Seconds(), "transitions/s")
	b.ReportMetric(float64(stateBytes), "state-B/inflight-req")
}

// BenchmarkFanout1000 measures a word-counts request whose split returns
// 1,000 sections: 1,000 children, their results, and the join.
func BenchmarkFanout1000(b *testing.B) {
	h := newHarness(b, wordCounts())
	sections := "[" + strings.TrimSuffix(strings.Repeat(`{"start":1,"end":2},`, 1000), ",") + "]"
	split := json.RawMessage(`{"filename":"f.txt","sections":` + sections + `}`)
	count := json.RawMessage(`{"section":"counts"}`)
	var stateBytes, written int
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("req-%d", i)
		commit := h.commit
		if i == 0 {
			// Count the bytes of state one request writes, all along.
			commit = func(eff Effects) {
				for _, w := range eff.Writes {
					if w.Record != nil {
						written += len(schemas.EncodeRecord(w.Record.Clone()))
					}
				}
				h.commit(eff)
			}
		}
		commit(h.m.Apply(h.store, Event{Kind: EventStart, Request: id, Workflow: "book-word-counts", Input: json.RawMessage(`{}`)}, h.now))
		commit(h.m.Apply(h.store, Event{Kind: EventResult, Request: id, Step: "store-title", Attempt: 1, Output: json.RawMessage(`{"title":"t"}`)}, h.now))
		eff := h.m.Apply(h.store, Event{Kind: EventResult, Request: id, Step: "book-split", Attempt: 1, Output: split}, h.now)
		commit(eff)
		if i == 0 {
			for k, r := range h.store {
				if strings.HasPrefix(k, id) {
					stateBytes += len(schemas.EncodeRecord(r.Clone()))
				}
			}
		}
		for _, d := range eff.Dispatches {
			commit(h.m.Apply(h.store, Event{Kind: EventResult, Request: id, Step: d.Step, Attempt: 1, Output: count}, h.now))
		}
		commit(h.m.Apply(h.store, Event{Kind: EventResult, Request: id, Step: "sum-splits", Attempt: 1, Output: json.RawMessage(`{"sum":1}`)}, h.now))
		delete(h.store, id)
	}
	b.ReportMetric(float64(1004*b.N)/b.Elapsed().Seconds(), "transitions/s")
	b.ReportMetric(float64(stateBytes), "state-B/inflight-req")
	b.ReportMetric(float64(written), "state-B-written/req")
}

// linear3Expr is linear3 with a when: and an input: mapping on every step.
const linear3Expr = `
workflows:
  - name: linear3
    steps:
      - name: a
        when: input.lang == "en"
        input: {doc: input.doc, lang: input.lang}
      - name: b
        depends: [a]
        when: steps.a.score > 0.5
        input: {label: steps.a.label, score: steps.a.score}
      - name: c
        depends: [b]
        when: steps.b.label != ""
        input: {label: steps.b.label, high: steps.b.score > 0.9}
`

// BenchmarkLinear3Expressions is BenchmarkLinear3 with a when: and an
// input: mapping on every step, for the cost of evaluating them; run both
// in the same run to compare (-bench 'Linear3').
func BenchmarkLinear3Expressions(b *testing.B) {
	h := newHarness(b, parsed(b, linear3Expr))
	in := json.RawMessage(`{"doc":"d-1","lang":"en"}`)
	out := json.RawMessage(`{"score":0.93,"label":"invoice"}`)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("req-%d", i)
		d := h.m.Apply(h.store, Event{Kind: EventStart, Request: id, Workflow: "linear3", Input: in}, h.now)
		h.commit(d)
		for range 3 {
			if len(d.Dispatches) != 1 {
				b.Fatalf("dispatches %+v, completions %+v", d.Dispatches, d.Completions)
			}
			disp := d.Dispatches[0]
			d = h.m.Apply(h.store, Event{Kind: EventResult, Request: id, Step: disp.Step, Attempt: 1, Output: out}, h.now)
			h.commit(d)
		}
		if len(d.Completions) != 1 || d.Completions[0].Status != schemas.Succeeded {
			b.Fatalf("completion %+v", d.Completions)
		}
		delete(h.store, id)
	}
	b.ReportMetric(float64(4*b.N)/b.Elapsed().Seconds(), "transitions/s")
}
