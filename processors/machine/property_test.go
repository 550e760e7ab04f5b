package machine

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/statekey"
	"github.com/stepwise-run/stepwise/topology"
)

// randomWorkflow builds a random valid workflow: a DAG of up to six steps,
// some of which fan out over tasks (nested up to two levels). Every list key
// is distinct so each fan-out finds its own list.
func randomWorkflow(r *rand.Rand) (*topology.Workflow, []string) {
	tasks := map[string]*topology.Task{}
	var listKeys []string
	var build func(depth int, prefix string) *topology.Graph
	build = func(depth int, prefix string) *topology.Graph {
		n := 1 + r.IntN(4)
		if depth == 0 {
			n = 1 + r.IntN(6)
		}
		var specs []spec
		for i := range n {
			name := fmt.Sprintf("%ss%d", prefix, i)
			var deps []string
			for j := range i {
				if r.IntN(3) == 0 {
					deps = append(deps, fmt.Sprintf("%ss%d", prefix, j))
				}
			}
			head := name
			if depth < 2 && r.IntN(3) == 0 {
				tname := fmt.Sprintf("%st%d", prefix, i)
				key := "items" + tname + "s" // its singular (the item key) differs
				listKeys = append(listKeys, key)
				tasks[tname] = task(tname, key, build(depth+1, tname+"_"))
				head = name + "=" + tname
			}
			s := head
			if len(deps) > 0 {
				s += "<-" + strings.Join(deps, ",")
			}
			specs = append(specs, spec(s))
		}
		retry := topology.RetryPolicy{MaxAttempts: 1 + r.IntN(3), Initial: time.Second, Max: 5 * time.Second, Multiplier: 2}
		return graph(tasks, retry, specs...)
	}
	g := build(0, "")
	return &topology.Workflow{Name: "random", Graph: g, Tasks: tasks}, listKeys
}

type logged struct {
	ev  Event
	now time.Time
}

// driver delivers a random workflow's events with duplicates, reordering,
// stale attempts and replays, and checks the invariants as it goes.
type driver struct {
	t        *testing.T
	r        *rand.Rand
	h        *harness
	listKeys []string
	log      []logged
	snaps    []mapStore // snaps[k]: the store before log[k]
	open     []Dispatch // dispatched, not answered yet
	answered []Event
	done     map[string]int // completions per request
}

func (d *driver) apply(ev Event) {
	d.snaps = append(d.snaps, maps.Clone(d.h.store))
	d.log = append(d.log, logged{ev, d.h.now})
	eff := d.h.apply(ev)
	for _, disp := range eff.Dispatches {
		if d.done[disp.Request] > 0 {
			d.t.Fatalf("dispatch of %s after %s completed", disp.Step, disp.Request)
		}
		d.checkJoined(disp)
		d.open = append(d.open, disp)
	}
	for _, c := range eff.Completions {
		d.done[c.Request]++
		if d.done[c.Request] > 1 {
			d.t.Fatalf("request %s completed twice", c.Request)
		}
	}
}

// checkJoined fails the test unless every child of every fan-out step the
// dispatched step depends on has finished.
func (d *driver) checkJoined(disp Dispatch) {
	instPath, name := statekey.SplitStep(disp.Step)
	inst := d.h.store[statekey.Format(disp.Request, instPath)]
	g := (&transition{m: d.h.m}).mustGraphOf(inst)
	for _, dep := range g.ByName[name].Depends {
		ss := inst.Steps[dep]
		if dep == topology.Start || g.ByName[dep].Task == nil {
			continue
		}
		if ss.Status != schemas.StepSucceeded {
			d.t.Fatalf("%s dispatched before fan-out %s finished", disp.Step, dep)
		}
		for i := range ss.Children {
			child := d.h.store[statekey.Format(disp.Request, statekey.ChildPath(instPath, dep, i))]
			if child == nil || child.Status != schemas.StatusSucceeded {
				d.t.Fatalf("%s dispatched before child %d of %s finished", disp.Step, i, dep)
			}
		}
	}
}

// output is what every worker answers: every list key (so any fan-out
// finds a list) and every element key (so a join can tell finished
// children from unfinished ones, which the join would leave out).
func (d *driver) output(disp Dispatch) json.RawMessage {
	o := map[string]any{"from_" + strings.ReplaceAll(disp.Step, "/", "_"): disp.Attempt}
	for _, k := range d.listKeys {
		o[k] = make([]int, d.r.IntN(4))
		o[topology.Singular(k)] = "v"
	}
	b, _ := json.Marshal(o)
	return b
}

func (d *driver) step() bool {
	switch n := d.r.IntN(20); {
	case n < 12 && len(d.open) > 0:
		i := d.r.IntN(len(d.open))
		disp := d.open[i]
		d.open = slices.Delete(d.open, i, i+1)
		ev := Event{Kind: EventResult, Request: disp.Request, Step: disp.Step, Attempt: disp.Attempt}
		switch d.r.IntN(10) {
		case 0:
			ev.Error = &schemas.StepError{Message: "flaky", Retryable: true}
		case 1:
			ev.Output = json.RawMessage(`not json`)
		default:
			ev.Output = d.output(disp)
		}
		d.answered = append(d.answered, ev)
		d.apply(ev)
	case n < 14 && len(d.answered) > 0: // duplicate delivery
		d.apply(d.answered[d.r.IntN(len(d.answered))])
	case n < 15 && len(d.answered) > 0: // stale attempt
		ev := d.answered[d.r.IntN(len(d.answered))]
		ev.Attempt--
		d.apply(ev)
	case n < 16 && len(d.log) > 0: // replay of any earlier event
		d.apply(d.log[d.r.IntN(len(d.log))].ev)
	case n < 17 && d.r.IntN(8) == 0:
		d.apply(Event{Kind: EventCancel, Request: fmt.Sprintf("req-%d", d.r.IntN(3))})
	default:
		return d.fireOne()
	}
	return true
}

// fireOne fires the earliest pending timer other than expiry (forgetting a
// request would make a replayed start legitimately run again).
func (d *driver) fireOne() bool {
	var due []Timer
	for _, tm := range d.h.timers {
		if tm.Kind != TimerExpire {
			due = append(due, tm)
		}
	}
	if len(due) == 0 {
		return len(d.open) > 0
	}
	slices.SortFunc(due, func(a, b Timer) int { return strings.Compare(timerID(a), timerID(b)) })
	tm := slices.MinFunc(due, func(a, b Timer) int { return a.At.Compare(b.At) })
	delete(d.h.timers, timerID(tm))
	if d.h.now.Before(tm.At) {
		d.h.now = tm.At
	}
	d.apply(Event{Kind: EventTimer, Request: tm.Request, Step: tm.Step, Attempt: tm.Attempt, Timer: tm.Kind})
	return true
}

func encodeStore(s mapStore) map[string]string {
	out := map[string]string{}
	for k, r := range s {
		out[k] = string(schemas.EncodeRecord(r.Clone()))
	}
	return out
}

func TestPropertyEveryRequestCompletesExactlyOnce(t *testing.T) {
	for seed := range uint64(300) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			wf, keys := randomWorkflow(r)
			d := &driver{t: t, r: r, h: newHarness(t, wf), listKeys: keys, done: map[string]int{}}
			requests := 1 + r.IntN(3)
			for i := range requests {
				list := make([]int, r.IntN(4))
				in := map[string]any{}
				for _, k := range keys {
					in[k] = list
				}
				b, _ := json.Marshal(in)
				d.apply(Event{Kind: EventStart, Request: fmt.Sprintf("req-%d", i), Workflow: "random", Input: b, Partition: 1})
			}
			for steps := 0; d.step(); steps++ {
				if steps > 20000 {
					t.Fatalf("no progress after %d steps; open %d", steps, len(d.open))
				}
				d.h.now = d.h.now.Add(time.Millisecond)
			}
			for i := range requests {
				if got := d.done[fmt.Sprintf("req-%d", i)]; got != 1 {
					t.Fatalf("req-%d completed %d times", i, got)
				}
			}
			for k, rec := range d.h.store {
				if rec.Path != "" {
					t.Fatalf("child record %s left after every request finished", k)
				}
			}
			final := encodeStore(d.h.store)

			// Replaying the log from any prefix of it yields the same state.
			for _, k := range []int{0, len(d.log) / 3, len(d.log) / 2, len(d.log) - 1} {
				h := newHarness(t, wf)
				h.m = d.h.m
				h.store = maps.Clone(d.snaps[k])
				for _, l := range d.log[k:] {
					h.now = l.now
					h.apply(l.ev)
				}
				if got := encodeStore(h.store); !maps.Equal(got, final) {
					t.Fatalf("replay from event %d of %d gives another state", k, len(d.log))
				}
			}
			// Delivering the whole log again changes nothing.
			n := len(d.h.dispatches)
			for _, l := range d.log {
				if eff := d.h.apply(l.ev); len(eff.Completions) != 0 {
					t.Fatalf("replayed %+v completed again", l.ev)
				}
			}
			if len(d.h.dispatches) != n {
				t.Fatalf("replaying the log dispatched %d more tasks", len(d.h.dispatches)-n)
			}
		})
	}
}
