package machine

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/definitions"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
)

// spec is a compact step description for building graphs in tests:
// "name", "name<-dep1,dep2", "name=task<-dep" (fan-out over task).
type spec string

// graph compiles specs the way the topology package does: default
// dependency __start__, queue = step name, terminals in declaration order.
func graph(tasks map[string]*topology.Task, retry topology.RetryPolicy, specs ...spec) *topology.Graph {
	g := &topology.Graph{ByName: map[string]*topology.Step{}}
	for _, s := range specs {
		head, deps, _ := strings.Cut(string(s), "<-")
		name, task, _ := strings.Cut(head, "=")
		st := &topology.Step{Name: name, Retry: retry}
		if deps == "" {
			st.Depends = []string{topology.Start}
		} else {
			st.Depends = strings.Split(deps, ",")
		}
		if task != "" {
			st.Task = tasks[task]
			if st.Task == nil {
				panic("unknown task " + task)
			}
		} else {
			st.Queue = name
		}
		g.Steps = append(g.Steps, st)
		g.ByName[name] = st
	}
	hasSucc := map[string]bool{}
	for _, st := range g.Steps {
		for _, d := range st.Depends {
			if p := g.ByName[d]; p != nil {
				p.Successors = append(p.Successors, st)
				hasSucc[d] = true
			}
		}
	}
	for _, st := range g.Steps {
		if !hasSucc[st.Name] {
			g.Terminal = append(g.Terminal, st)
		}
	}
	return g
}

func task(name, listKey string, g *topology.Graph) *topology.Task {
	return &topology.Task{Name: name, ItemListKey: listKey, ItemKey: topology.Singular(listKey), Graph: g}
}

func setOf(wfs ...*topology.Workflow) *topology.Set {
	s := &topology.Set{Workflows: map[string]*topology.Workflow{}}
	for _, w := range wfs {
		s.Workflows[w.Name] = w
		s.Order = append(s.Order, w.Name)
	}
	return s
}

var fastRetry = topology.RetryPolicy{MaxAttempts: 3, Initial: time.Second, Max: 4 * time.Second, Multiplier: 2}

// wordCounts is the original manager's example workflow.
func wordCounts() *topology.Workflow {
	tasks := map[string]*topology.Task{}
	tasks["word-counts"] = task("word-counts", "sections", graph(tasks, fastRetry, "segment-word-counts"))
	return &topology.Workflow{
		Name:  "book-word-counts",
		Tasks: tasks,
		Graph: graph(tasks, fastRetry,
			"book-split",
			"section-counts=word-counts<-book-split",
			"sum-splits<-section-counts",
			"store-title"),
	}
}

// mapStore is the committed state of one partition.
type mapStore map[string]*schemas.Record

func (s mapStore) Get(key string) *schemas.Record { return s[key] }

// harness drives a Machine the way the runtime does: it applies writes to
// its store after each transition and keeps every effect for inspection.
type harness struct {
	t           testing.TB
	m           *Machine
	store       mapStore
	now         time.Time
	log         []Event // every event applied, in order
	dispatches  []Dispatch
	completions []schemas.Completion
	timers      map[string]Timer // by timerID
}

func newHarness(t testing.TB, wfs ...*topology.Workflow) *harness {
	return &harness{
		t: t, m: New(definitions.FromSet(setOf(wfs...))), store: mapStore{},
		now:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		timers: map[string]Timer{},
	}
}

func timerID(tm Timer) string {
	return fmt.Sprintf("%s|%s|%d|%d", tm.Request, tm.Step, tm.Attempt, tm.Kind)
}

func (h *harness) apply(ev Event) Effects {
	h.log = append(h.log, ev)
	eff := h.m.Apply(h.store, ev, h.now)
	h.commit(eff)
	h.dispatches = append(h.dispatches, eff.Dispatches...)
	h.completions = append(h.completions, eff.Completions...)
	for _, tm := range eff.ClearTimers {
		delete(h.timers, timerID(tm))
	}
	for _, tm := range eff.SetTimers {
		h.timers[timerID(tm)] = tm
	}
	return eff
}

func (h *harness) start(id, workflow, input string) Effects {
	return h.apply(Event{Kind: EventStart, Request: id, Workflow: workflow, Input: json.RawMessage(input), Partition: 3})
}

func (h *harness) ok(d Dispatch, output string) Effects {
	return h.apply(Event{Kind: EventResult, Request: d.Request, Step: d.Step, Attempt: d.Attempt, Output: json.RawMessage(output)})
}

func (h *harness) fail(d Dispatch, msg string, retryable bool) Effects {
	return h.apply(Event{Kind: EventResult, Request: d.Request, Step: d.Step, Attempt: d.Attempt, Error: &schemas.StepError{Message: msg, Retryable: retryable}})
}

// fireDue advances the clock to the earliest timer and fires every timer
// due by then, in a deterministic order. It reports whether any fired.
func (h *harness) fireDue() bool {
	if len(h.timers) == 0 {
		return false
	}
	ids := slices.Sorted(maps.Keys(h.timers))
	earliest := h.timers[ids[0]].At
	for _, id := range ids {
		if h.timers[id].At.Before(earliest) {
			earliest = h.timers[id].At
		}
	}
	if h.now.Before(earliest) {
		h.now = earliest
	}
	for _, id := range ids {
		tm := h.timers[id]
		if tm.At.After(h.now) {
			continue
		}
		delete(h.timers, id)
		h.apply(Event{Kind: EventTimer, Request: tm.Request, Step: tm.Step, Attempt: tm.Attempt, Timer: tm.Kind})
	}
	return true
}

// dispatched returns the last dispatch of a step path, failing the test if
// there is none.
func (h *harness) dispatched(step string) Dispatch {
	h.t.Helper()
	for i := len(h.dispatches) - 1; i >= 0; i-- {
		if h.dispatches[i].Step == step {
			return h.dispatches[i]
		}
	}
	h.t.Fatalf("step %s was never dispatched; dispatched: %v", step, h.stepsDispatched())
	return Dispatch{}
}

func (h *harness) stepsDispatched() []string {
	var out []string
	for _, d := range h.dispatches {
		out = append(out, fmt.Sprintf("%s#%d", d.Step, d.Attempt))
	}
	return out
}

// jsonEq fails unless two JSON documents are equal as values.
func jsonEq(t testing.TB, what string, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: invalid JSON %q: %v", what, got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad expectation %q: %v", what, want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Fatalf("%s:\n got  %s\n want %s", what, gb, wb)
	}
}

// commit applies a transition's writes to the store, as the runtime does
// after its transaction commits.
func (h *harness) commit(eff Effects) {
	for _, w := range eff.Writes {
		if w.Record == nil {
			delete(h.store, w.Key)
		} else {
			h.store[w.Key] = w.Record
		}
	}
}
