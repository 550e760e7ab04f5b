package machine

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stepwise-run/stepwise/definitions"
	"github.com/stepwise-run/stepwise/schemas"
)

// A fan-out of 10 children with a slice of 4 creates them in three
// transitions (4, 4, 2), each armed by the timer the one before set; a
// replayed timer changes nothing, a restore between slices (timers rebuilt
// from the records) goes on where it stood, and the join runs once.
func TestFanoutCreatesChildrenInSlices(t *testing.T) {
	h := newHarness(t, wordCounts())
	h.m = New(definitions.FromSet(setOf(wordCounts())), WithSpawnSlice(4))
	h.start("req", "book-word-counts", `{"book":"b"}`)
	sections := make([]string, 10)
	for i := range sections {
		sections[i] = fmt.Sprintf("%q", fmt.Sprint("s", i))
	}
	eff := h.ok(h.dispatched("book-split"), `{"sections":[`+strings.Join(sections, ",")+`]}`)
	if n := countChildren(eff.Dispatches); n != 4 {
		t.Fatalf("first transition dispatched %d children, want 4", n)
	}
	if len(eff.SetTimers) != 1 || eff.SetTimers[0].Kind != TimerSpawn || eff.SetTimers[0].Attempt != 4 {
		t.Fatalf("timers set: %+v", eff.SetTimers)
	}
	first := eff.SetTimers[0]

	// Second slice.
	eff = h.apply(Event{Kind: EventTimer, Request: "req", Step: first.Step, Attempt: first.Attempt, Timer: TimerSpawn})
	if n := countChildren(eff.Dispatches); n != 4 {
		t.Fatalf("second slice dispatched %d children, want 4", n)
	}
	// The same timer again (a replay after an abort) is stale.
	if eff := h.apply(Event{Kind: EventTimer, Request: "req", Step: first.Step, Attempt: first.Attempt, Timer: TimerSpawn}); eff.Reason != ReasonStaleTimer || len(eff.Writes) != 0 {
		t.Fatalf("replayed spawn timer: %+v", eff)
	}

	// A restore now rebuilds exactly the timer of the last slice.
	var rebuilt []Timer
	for _, k := range sortedKeys(h.store) {
		for _, tm := range TimersOf(h.store[k]) {
			if tm.Kind == TimerSpawn {
				rebuilt = append(rebuilt, tm)
			}
		}
	}
	if len(rebuilt) != 1 || rebuilt[0].Attempt != 8 {
		t.Fatalf("timers rebuilt from the records: %+v", rebuilt)
	}
	// Children answer before the last slice exists: no join yet.
	for i := range 8 {
		if eff := h.ok(h.dispatched(fmt.Sprintf("section-counts[%d]/segment-word-counts", i)), `{"section":1}`); len(eff.Dispatches) != 0 {
			t.Fatalf("child %d's result dispatched %v before every child existed", i, eff.Dispatches)
		}
	}
	eff = h.apply(Event{Kind: EventTimer, Request: "req", Step: rebuilt[0].Step, Attempt: rebuilt[0].Attempt, Timer: TimerSpawn})
	if n := countChildren(eff.Dispatches); n != 2 || len(eff.SetTimers) != 0 {
		t.Fatalf("last slice: %d children, timers %+v", n, eff.SetTimers)
	}
	joins := 0
	for i := 8; i < 10; i++ {
		eff := h.ok(h.dispatched(fmt.Sprintf("section-counts[%d]/segment-word-counts", i)), `{"section":1}`)
		for _, d := range eff.Dispatches {
			if d.Step == "sum-splits" {
				joins++
				var in map[string]json.RawMessage
				_ = json.Unmarshal(d.Input, &in)
				var got []int
				_ = json.Unmarshal(in["sections"], &got)
				if len(got) != 10 {
					t.Fatalf("join gathered %d outputs, want 10", len(got))
				}
			}
		}
	}
	if joins != 1 {
		t.Fatalf("join ran %d times", joins)
	}
}

// A request cancelled between two slices keeps what it created; its retry
// creates the rest at once and the fan-out finishes.
func TestFanoutRetryAfterCancelMidSpawn(t *testing.T) {
	h := newHarness(t, wordCounts())
	h.m = New(definitions.FromSet(setOf(wordCounts())), WithSpawnSlice(2))
	h.start("req", "book-word-counts", `{"book":"b"}`)
	eff := h.ok(h.dispatched("book-split"), `{"sections":["a","b","c","d","e"]}`)
	spawn := eff.SetTimers[0]
	h.apply(Event{Kind: EventCancel, Request: "req"})
	if eff := h.apply(Event{Kind: EventTimer, Request: "req", Step: spawn.Step, Attempt: spawn.Attempt, Timer: TimerSpawn}); eff.Reason != ReasonStaleTimer {
		t.Fatalf("spawn timer of a cancelled request: %+v", eff)
	}
	eff = h.apply(Event{Kind: EventRetry, Request: "req", Run: 1})
	if n := countChildren(eff.Dispatches); n != 5 {
		t.Fatalf("retry dispatched %d children, want 5 (2 cancelled, 3 never created)", n)
	}
	if p := h.store["req/section-counts"]; p == nil || p.Pending != 0 {
		t.Fatalf("progress after the retry: %+v", p)
	}
	for i := range 5 {
		h.ok(h.dispatched(fmt.Sprintf("section-counts[%d]/segment-word-counts", i)), `{"section":1}`)
	}
	h.ok(h.dispatched("sum-splits"), `{}`)
	h.ok(h.dispatched("store-title"), `{}`)
	if len(h.completions) != 2 || h.completions[1].Status != schemas.Succeeded {
		t.Fatalf("completions: %+v", h.completions)
	}
}

func countChildren(ds []Dispatch) int {
	n := 0
	for _, d := range ds {
		if strings.HasPrefix(d.Step, "section-counts[") {
			n++
		}
	}
	return n
}

func sortedKeys(s mapStore) []string { return slices.Sorted(maps.Keys(s)) }
