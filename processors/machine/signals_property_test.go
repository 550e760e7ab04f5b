package machine

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/statekey"
	"github.com/stepwise-run/stepwise/topology"
)

// withWaits gives some plain steps of a random workflow a heartbeat
// timeout, turns some into sleep steps
// or wait steps for one of a few signal names, some with a timeout (and
// some of those with onTimeout), and gives some workflows a deadline. It
// returns the signal names used.
func withWaits(r *rand.Rand, wf *topology.Workflow) []string {
	var names []string
	convert := func(g *topology.Graph) {
		for _, st := range g.Steps {
			if st.Task == nil && r.IntN(4) == 0 {
				st.HeartbeatTimeout = time.Duration(1+r.IntN(3)) * time.Second
			}
			if st.Task != nil || r.IntN(3) != 0 {
				continue
			}
			if r.IntN(4) == 0 {
				st.Sleep, st.Queue, st.HeartbeatTimeout = time.Duration(1+r.IntN(5))*time.Second, "", 0
				continue
			}
			w := &topology.Wait{Signal: fmt.Sprintf("sig%d", r.IntN(3))}
			if r.IntN(2) == 0 {
				w.Timeout = time.Duration(1+r.IntN(5)) * time.Second
				if r.IntN(2) == 0 {
					w.OnTimeout = json.RawMessage(`{"timedOut":true}`)
				}
			}
			st.Wait, st.Queue, st.Timeout, st.HeartbeatTimeout = w, "", w.Timeout, 0
			if !slices.Contains(names, w.Signal) {
				names = append(names, w.Signal)
			}
		}
	}
	convert(wf.Graph)
	if r.IntN(4) == 0 {
		wf.Deadline = time.Duration(2+r.IntN(20)) * time.Second
	}
	for _, name := range slices.Sorted(maps.Keys(wf.Tasks)) {
		convert(wf.Tasks[name].Graph)
	}
	return names
}

// waitPaths returns the step paths of the wait steps of every instance in
// the store, in key order.
func waitPaths(d *driver) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(d.h.store)) {
		rec := d.h.store[k]
		if rec.Kind != "" {
			continue
		}
		g, err := (&transition{m: d.h.m}).graphOf(rec)
		if err != nil {
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(rec.Steps)) {
			if st := g.ByName[name]; st != nil && st.Wait != nil {
				out = append(out, statekey.StepPath(rec.Path, name))
			}
		}
	}
	return out
}

// signalStep sends a random signal (early, late, duplicate, addressed or
// not) or takes a step of the plain driver.
func signalStep(d *driver, names []string) bool {
	if len(d.open) > 0 && d.r.IntN(8) == 0 {
		// A heartbeat of a dispatched attempt, answered or not.
		disp := d.open[d.r.IntN(len(d.open))]
		d.apply(Event{Kind: EventHeartbeat, Request: disp.Request, Step: disp.Step, Attempt: disp.Attempt, Output: json.RawMessage(`{"beat":1}`)})
		return true
	}
	if len(names) == 0 || d.r.IntN(6) != 0 {
		return d.step()
	}
	ev := Event{Kind: EventSignal, Request: fmt.Sprintf("req-%d", d.r.IntN(3)), Signal: names[d.r.IntN(len(names))],
		Output: json.RawMessage(fmt.Sprintf(`{"signalled":%d}`, d.r.IntN(3)))}
	if paths := waitPaths(d); len(paths) > 0 && d.r.IntN(2) == 0 {
		ev.Step = paths[d.r.IntN(len(paths))]
	}
	d.apply(ev)
	return true
}

// TestPropertySignals is the property test of the plain driver over
// workflows with wait and sleep steps, heartbeat timeouts and deadlines,
// heartbeats sent at random, with signals sent at random (before their
// step waits, while it waits, after it finished, repeated, for one step or
// for all): every run of a request completes exactly once, no wait step is
// dispatched, nothing is dispatched for a finished request, and replaying
// from any prefix gives the same state.
func TestPropertySignals(t *testing.T) {
	waited := 0
	defer func() { t.Logf("top-level wait steps succeeded across seeds: %d", waited) }()
	for seed := range uint64(300) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 11))
			wf, keys := randomWorkflow(r)
			names := withWaits(r, wf)
			d := &driver{t: t, r: r, h: newHarness(t, wf), listKeys: keys, done: map[string]int{},
				ran: map[string]map[int]int{}, succeeded: map[string]map[string]bool{}}
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
			for steps := 0; ; steps++ {
				if steps > 20000 {
					t.Fatalf("no progress after %d steps; open %d", steps, len(d.open))
				}
				d.h.now = d.h.now.Add(time.Millisecond)
				if signalStep(d, names) {
					continue
				}
				// Nothing in flight: what still runs waits for a signal
				// without a timeout. Send every name to every request.
				running := false
				for i := range requests {
					id := fmt.Sprintf("req-%d", i)
					if d.h.store[id].Status != schemas.Running {
						continue
					}
					running = true
					for _, n := range names {
						d.apply(Event{Kind: EventSignal, Request: id, Signal: n, Output: json.RawMessage(`{"last":true}`)})
					}
				}
				if !running {
					break
				}
			}
			for _, disp := range d.h.dispatches {
				inst, name := statekey.SplitStep(disp.Step)
				rec := d.h.store[statekey.Format(disp.Request, inst)]
				if rec == nil {
					continue // forgotten child
				}
				if g, err := (&transition{m: d.h.m}).graphOf(rec); err == nil && (g.ByName[name].Wait != nil || g.ByName[name].Sleep > 0) {
					t.Fatalf("wait or sleep step %s was dispatched", disp.Step)
				}
			}
			for i := range requests {
				id := fmt.Sprintf("req-%d", i)
				if got, runs := d.done[id], d.h.store[id].Run(); got != runs {
					t.Fatalf("%s completed %d times in %d runs; want once per run", id, got, runs)
				}
				for name, ss := range d.h.store[id].Steps {
					if st := wf.Graph.ByName[name]; st.Wait != nil && ss.Status == schemas.StepSucceeded {
						waited++
					}
				}
			}
			final := encodeStore(d.h.store)
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
