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

	"github.com/stepwise-run/stepwise/definitions"
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
	// ran[request][run] counts completions per run: at most one each.
	ran map[string]map[int]int
	// succeeded holds the plain step paths and child paths of each
	// request that had succeeded when its latest retry was applied: a
	// retry must never run them again.
	succeeded map[string]map[string]bool
	retries   int // retries applied, for the test's log
}

func (d *driver) apply(ev Event) {
	d.snaps = append(d.snaps, maps.Clone(d.h.store))
	d.log = append(d.log, logged{ev, d.h.now})
	var done map[string]bool
	if ev.Kind == EventRetry {
		done = d.succeededOf(ev.Request)
	}
	eff := d.h.apply(ev)
	if ev.Kind == EventRetry && eff.Reason == "" {
		d.retries++
		d.succeeded[ev.Request] = done
	}
	for _, disp := range eff.Dispatches {
		if root := d.h.store[disp.Request]; root == nil || root.Status != schemas.Running {
			d.t.Fatalf("dispatch of %s while %s is not running", disp.Step, disp.Request)
		}
		for p := range d.succeeded[disp.Request] {
			if disp.Step == p || strings.HasPrefix(disp.Step, p+"/") {
				d.t.Fatalf("retry ran %s of %s again, which had succeeded (%s)", disp.Step, disp.Request, p)
			}
		}
		d.checkJoined(disp)
		d.open = append(d.open, disp)
	}
	d.checkSpawnTimers()
	for _, c := range eff.Completions {
		d.done[c.Request]++
		run := d.h.store[c.Request].Run()
		if d.ran[c.Request] == nil {
			d.ran[c.Request] = map[int]int{}
		}
		d.ran[c.Request][run]++
		if d.ran[c.Request][run] > 1 {
			d.t.Fatalf("request %s completed twice in run %d", c.Request, run)
		}
	}
}

// succeededOf returns the plain step paths and child paths of request that
// have succeeded.
func (d *driver) succeededOf(request string) map[string]bool {
	out := map[string]bool{}
	for _, rec := range d.h.store {
		if rec.Request != request || rec.Kind != "" {
			continue
		}
		if rec.Path != "" && rec.Status == schemas.StatusSucceeded {
			out[rec.Path] = true
			continue
		}
		for name, ss := range rec.Steps {
			if ss.Status == schemas.StepSucceeded && ss.Children == 0 && name != topology.OnFailureStep {
				out[statekey.StepPath(rec.Path, name)] = true
			}
		}
	}
	return out
}

// finished returns a request that has finished without succeeding, if
// any: what a client would retry.
func (d *driver) finished() (*schemas.Record, bool) {
	for i := range 3 {
		if r := d.h.store[fmt.Sprintf("req-%d", i)]; r != nil && (r.Status == schemas.StatusFailed || r.Status == schemas.StatusCancelled) {
			return r, true
		}
	}
	return nil, false
}

// checkJoined fails the test unless every child of every fan-out step the
// dispatched step depends on has finished.
func (d *driver) checkJoined(disp Dispatch) {
	instPath, name := statekey.SplitStep(disp.Step)
	inst := d.h.store[statekey.Format(disp.Request, instPath)]
	g := (&transition{m: d.h.m}).mustGraphOf(inst)
	if name == topology.OnFailureStep {
		if root := d.h.store[disp.Request]; root.Error == nil {
			d.t.Fatalf("failure handler of %s dispatched without a failure", disp.Request)
		}
		return
	}
	if st := g.ByName[name]; !dependsOnStart(st) && !slices.ContainsFunc(st.Depends, func(dep string) bool {
		return inst.Steps[dep].Status != schemas.StepSkipped
	}) {
		d.t.Fatalf("%s dispatched though every one of its dependencies was skipped", disp.Step)
	}
	for _, dep := range g.ByName[name].Depends {
		ss := inst.Steps[dep]
		if dep == topology.Start || g.ByName[dep].Task == nil || ss.Status == schemas.StepSkipped || ss.Continued {
			continue
		}
		if ss.Status != schemas.StepSucceeded {
			d.t.Fatalf("%s dispatched before fan-out %s finished", disp.Step, dep)
		}
		failed := 0
		for i := range ss.Children {
			child := d.h.store[statekey.Format(disp.Request, statekey.ChildPath(instPath, dep, i))]
			tolerated := g.ByName[dep].Tolerate != nil && child != nil && child.Status == schemas.StatusFailed && child.Steps == nil
			if child == nil || (child.Status != schemas.StatusSucceeded && !tolerated) {
				d.t.Fatalf("%s dispatched before child %d of %s finished", disp.Step, i, dep)
			}
			if tolerated {
				failed++
			}
		}
		if failed > 0 && failed > g.ByName[dep].Tolerate.Bound(ss.Children) {
			d.t.Fatalf("%s dispatched after %d failed children of %s, over its bound %+v", disp.Step, failed, dep, *g.ByName[dep].Tolerate)
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
		ev := Event{Kind: EventCancel, Request: fmt.Sprintf("req-%d", d.r.IntN(3))}
		if r := d.h.store[ev.Request]; r != nil && d.r.IntN(2) == 0 {
			ev.Run = r.Run() // the run the client saw; else 0: whatever runs
		}
		d.apply(ev)
	case n < 18 && d.r.IntN(3) == 0:
		// A client retries a request it sees failed or cancelled, at
		// most a few times so that the run ends.
		if r, ok := d.finished(); ok && r.Retries < 3 {
			d.apply(Event{Kind: EventRetry, Request: r.Request, Run: r.Run()})
			return true
		}
		return d.fireOne()
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

// TestPropertyEveryRequestCompletesExactlyOnce drives random workflows
// (every other seed with when: conditions, input: mappings and
// expressions that fail, so steps are skipped, skips propagate and steps
// fail on evaluation) with duplicated, reordered and replayed results,
// timers, cancels and retries: no step is dispatched whose dependencies
// were all skipped; every run of a request completes exactly once, a retry never
// runs a step (or fan-out child) that had succeeded, and the same events
// always give the same state.
func TestPropertyEveryRequestCompletesExactlyOnce(t *testing.T) {
	totalRetries, skips, exprFailures, continued, toleratedChildren, handlers := 0, 0, 0, 0, 0, 0
	defer func() {
		t.Logf("retries applied across seeds: %d; skipped steps %d; evaluation failures %d; continued failures %d; tolerated failed children %d; failure handlers run %d",
			totalRetries, skips, exprFailures, continued, toleratedChildren, handlers)
		if !t.Failed() && (skips == 0 || exprFailures == 0 || continued == 0 || toleratedChildren == 0 || handlers == 0) {
			t.Errorf("the seeds never skipped a step (%d), failed one on evaluation (%d), continued past a failure (%d) or tolerated a failed child (%d): the rules are not exercised",
				skips, exprFailures, continued, toleratedChildren)
		}
	}()
	for seed := range uint64(300) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			wf, keys := randomWorkflow(r)
			if seed%2 == 1 {
				withConditions(r, wf)
			}
			d := &driver{t: t, r: r, h: newHarness(t, wf), listKeys: keys, done: map[string]int{},
				ran: map[string]map[int]int{}, succeeded: map[string]map[string]bool{}}
			// Fan-outs of up to three children: slices of one or two make
			// them create their children across transitions.
			d.h.m = New(definitions.FromSet(setOf(wf)), WithSpawnSlice(1+r.IntN(3)))
			requests := 1 + r.IntN(3)
			for i := range requests {
				list := make([]int, r.IntN(4))
				in := map[string]any{"flip": r.IntN(2) == 0}
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
				id := fmt.Sprintf("req-%d", i)
				if got, runs := d.done[id], d.h.store[id].Run(); got != runs {
					t.Fatalf("%s completed %d times in %d runs; want once per run", id, got, runs)
				}
			}
			totalRetries += d.retries
			for _, rec := range d.h.store {
				for _, ss := range rec.Steps {
					if ss.Status == schemas.StepSkipped {
						skips++
					}
					if ss.Continued {
						continued++
					}
					if ss.Attempt > 0 && rec.Path == "" && rec.Steps[topology.OnFailureStep] == ss {
						handlers++
					}
				}
				if rec.Kind == "" && rec.Path != "" && rec.Status == schemas.StatusFailed && rec.Steps == nil {
					toleratedChildren++
				}
				if rec.Error != nil && strings.Contains(rec.Error.Message, `property "input.flip + 1 > 0"`) {
					exprFailures++
				}
			}
			for k, rec := range d.h.store {
				if root := d.h.store[rec.Request]; rec.Path != "" && (root == nil || root.Status == schemas.StatusSucceeded) {
					t.Fatalf("child record %s left after its request succeeded", k)
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

// checkSpawnTimers fails the test unless every fan-out still creating its
// children has the timer that creates the next slice pending: the one a
// restore would rebuild from the progress record.
func (d *driver) checkSpawnTimers() {
	for k, rec := range d.h.store {
		if rec.Kind != schemas.KindFanout || rec.Pending == 0 {
			continue
		}
		if root := d.h.store[rec.Request]; root == nil || root.Status != schemas.Running {
			continue // the request ended mid-spawn: the timer is stale, a retry creates the rest
		}
		instPath, name := statekey.SplitStep(rec.Path)
		if inst := d.h.store[statekey.Format(rec.Request, instPath)]; inst == nil || inst.Steps[name] == nil || inst.Steps[name].Status != schemas.StepRunning {
			continue // the fan-out was stopped (its request is failing, its failure handler runs): spawnNext ignores the timer
		}
		for _, tm := range TimersOf(rec) {
			if _, ok := d.h.timers[timerID(tm)]; !ok {
				d.t.Fatalf("fan-out %s has %d children to create and no timer %s", k, rec.Pending, timerID(tm))
			}
		}
	}
}
