package machine

import (
	"fmt"
	"time"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
)

// Timers of the definition (topology/timers.go), the rules:
//
//   - A sleep step is never dispatched: it runs with a deadline Sleep
//     after it started, and succeeds when that timer fires, with its
//     input as its output. A cancel or a failure elsewhere marks it
//     cancelled; a retry of the request sleeps again.
//   - A workflow's deadline is set on the request's record when a run
//     starts (the start, each retry): Deadline after it. When it passes
//     and the run still runs, the request fails with "deadline of D
//     passed", its running tasks revoked as a cancel does.

// sleep starts attempt ss.Attempt of sleep step at path of inst
// (mutable).
func (t *transition) sleep(inst *schemas.Record, step *topology.Step, ss *schemas.StepState, path string) {
	ss.Deadline = t.now.Add(step.Sleep)
	t.eff.SetTimers = append(t.eff.SetTimers, Timer{Request: inst.Request, Step: path, Attempt: ss.Attempt, Kind: TimerTimeout, At: ss.Deadline})
}

// slept ends sleep step of inst (mutable; ss its running state).
func (t *transition) slept(inst *schemas.Record, step *topology.Step, ss *schemas.StepState) {
	ss.Deadline = time.Time{}            // the timer that fired
	out, _, _ := t.stepInput(inst, step) // an input: mapping that fails failed the step when it began
	ss.Status, ss.Output, ss.Ended = schemas.StepSucceeded, out, t.now
	t.advance(inst, t.mustGraphOf(inst))
}

// setDeadline sets the deadline of the run root (mutable, running)
// starts now, from wf (nil: resolved from the record).
func (t *transition) setDeadline(root *schemas.Record, wf *topology.Workflow) {
	if wf == nil {
		var err error
		if wf, _, err = t.m.defs.Resolve(root.Workflow, root.DefinitionVersion()); err != nil {
			return
		}
	}
	root.Deadline = time.Time{}
	if wf.Deadline <= 0 {
		return
	}
	root.Deadline = t.now.Add(wf.Deadline)
	t.eff.SetTimers = append(t.eff.SetTimers, Timer{Request: root.Request, Attempt: root.Run(), Kind: TimerDeadline, At: root.Deadline})
}

// deadlinePassed fails the run a deadline timer names, if it still runs.
func (t *transition) deadlinePassed(ev Event) {
	root := t.get(ev.Request)
	if root == nil || root.Status != schemas.Running || root.Deadline.IsZero() || ev.Attempt != root.Run() || t.now.Before(root.Deadline) {
		t.ignore(ReasonStaleTimer, "stale deadline timer")
		return
	}
	msg := "deadline passed"
	if wf, _, err := t.m.defs.Resolve(root.Workflow, root.DefinitionVersion()); err == nil && wf.Deadline > 0 {
		msg = fmt.Sprintf("deadline of %s passed", wf.Deadline)
	}
	t.failRequest(ev.Request, &schemas.Failure{Message: msg})
}
