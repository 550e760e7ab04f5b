package machine

import (
	"encoding/json"
	"fmt"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/statekey"
	"github.com/stepwise-run/stepwise/topology"
)

// A wide fan-out creates its children in slices of at most the machine's
// spawn slice, one slice per transition, so that no transaction holds
// 10,000 new records, tasks and Kafka records at once. The fan-out's
// progress record counts the children not created yet (Pending); while it
// is above zero the record implies a TimerSpawn timer, due at once, whose
// Attempt is the index of the next child to create. Firing it creates the
// next slice in the following transaction. The timer is in state (TimersOf
// of the progress record), so a restore after a crash between two slices
// goes on where the last committed slice ended; a timer whose index no
// longer matches the record (fired twice, replayed) is stale and ignored.
//
// The join cannot run early: it runs when Done reaches Children, and a
// child not created yet is not done.

// WithSpawnSlice sets how many children of a fan-out one transition
// creates (n < 1: all at once).
func WithSpawnSlice(n int) Option { return func(m *Machine) { m.spawnSlice = n } }

// spawn creates children from, from+1, ... of fan-out step of inst over
// elems, at most one slice, and records in the step's progress record how
// many are left. fields is the step's input without the list key.
func (t *transition) spawn(inst *schemas.Record, step *topology.Step, fields map[string]json.RawMessage, elems []json.RawMessage, from int) {
	end := len(elems)
	if t.m.spawnSlice > 0 {
		end = min(end, from+t.m.spawnSlice)
	}
	progressPath := statekey.StepPath(inst.Path, step.Name)
	progress := t.mutable(statekey.Format(inst.Request, progressPath))
	progress.Pending = len(elems) - end
	if progress.Pending > 0 {
		t.eff.SetTimers = append(t.eff.SetTimers, spawnTimers(progress)...)
	}
	for i := from; i < end; i++ {
		t.startChild(inst, step, fields, elems[i], i)
		if t.rootFinished(inst.Request) {
			return
		}
	}
}

// spawnNext handles a TimerSpawn timer: the next slice of the fan-out its
// step path names, if the fan-out still waits for exactly that slice.
func (t *transition) spawnNext(ev Event) {
	if root := t.get(ev.Request); root == nil || root.Status != schemas.Running {
		t.ignore(ReasonStaleTimer, "spawn timer of an unknown or finished request")
		return
	}
	progress := t.get(statekey.Format(ev.Request, ev.Step))
	if progress == nil || progress.Kind != schemas.KindFanout || progress.Pending == 0 || progress.Children-progress.Pending != ev.Attempt {
		t.ignore(ReasonStaleTimer, "stale spawn timer")
		return
	}
	instPath, name := statekey.SplitStep(ev.Step)
	inst := t.get(statekey.Format(ev.Request, instPath))
	if inst == nil || inst.Status != schemas.Running || inst.Kind != "" {
		t.ignore(ReasonStaleTimer, "spawn timer of an unknown or finished instance "+instPath)
		return
	}
	g, err := t.graphOf(inst)
	if err != nil {
		t.failRequest(ev.Request, &schemas.Failure{Step: ev.Step, Message: "cannot continue: " + err.Error()})
		return
	}
	step := g.ByName[name]
	if ss := inst.Steps[name]; step == nil || step.Task == nil || ss == nil || ss.Status != schemas.StepRunning {
		t.ignore(ReasonStaleTimer, "spawn timer of a fan-out step that is not running: "+ev.Step)
		return
	}
	in, e, evalErr := t.stepInput(inst, step) // as when the step began: mapped by its input:, if any
	if evalErr != nil {
		t.failRequest(ev.Request, &schemas.Failure{Step: ev.Step, Message: exprFailure(e, evalErr)})
		return
	}
	fields := decodeObject(in)
	var elems []json.RawMessage
	_ = json.Unmarshal(fields[step.Task.ItemListKey], &elems)
	if len(elems) != progress.Children {
		// The step's input is a function of the instance's committed
		// outputs, which do not change while the step runs.
		t.failRequest(ev.Request, &schemas.Failure{Step: ev.Step,
			Message: fmt.Sprintf("fan-out list has %d elements now, %d when the step started", len(elems), progress.Children)})
		return
	}
	delete(fields, step.Task.ItemListKey)
	t.spawn(inst, step, fields, elems, ev.Attempt)
}

// spawnedAll notes in the progress record at key, if any, that every child
// exists (resume created those a failed request had not).
func (t *transition) spawnedAll(key string) {
	if p := t.get(key); p == nil || p.Pending == 0 {
		return
	}
	p := t.mutable(key)
	t.eff.ClearTimers = append(t.eff.ClearTimers, spawnTimers(p)...)
	p.Pending = 0
}

// spawnTimers is the timer a running progress record implies.
func spawnTimers(r *schemas.Record) []Timer {
	if r.Pending <= 0 {
		return nil
	}
	return []Timer{{Request: r.Request, Step: r.Path, Attempt: r.Children - r.Pending, Kind: TimerSpawn, At: r.Updated}}
}
