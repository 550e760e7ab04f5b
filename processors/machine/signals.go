package machine

import (
	"errors"
	"fmt"
	"time"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/statekey"
	"github.com/stepwise-run/stepwise/topology"
)

// Reasons for signals that change no state.
const (
	// A signal for an unknown or finished request, of a name no step of
	// the workflow waits for, for a step path that is no such wait step,
	// with data that is not a JSON object, or beyond schemas.MaxSignals.
	ReasonSignalIgnored Reason = "signal_ignored"
	// A signal of a name and step the request already received: the
	// first wins.
	ReasonDuplicateSignal Reason = "duplicate_signal"
)

// Signals, the rules (the request's record keeps what it received in
// Record.Signals):
//
//   - A signal is for the steps waiting for its name (topology.Wait): the
//     one at its step path when it names one, else every such step of the
//     request, fan-out children included.
//   - The request keeps one signal per name and step path, the first to
//     arrive; a repeated one is ignored whatever it carries.
//   - A step that waits when the signal arrives (running, or between two
//     attempts) succeeds at once with the signal's data as its output; a
//     step that starts waiting later takes the first kept signal for it
//     when it starts, so an early signal is never lost.
//   - A wait step's timeout without onTimeout fails the attempt
//     (retryable: the step's retry policy applies); with onTimeout the
//     step succeeds with onTimeout's output.
//   - Kept signals stay for the request's life: a step run again by a
//     retry takes the same signal again.

// signal applies a signal to its request.
func (t *transition) signal(ev Event) {
	root := t.get(ev.Request)
	if root == nil {
		t.ignore(ReasonSignalIgnored, "signal for an unknown request")
		return
	}
	if root.Status != schemas.Running {
		t.ignore(ReasonSignalIgnored, "signal for a request already "+string(root.Status))
		return
	}
	wf, _, err := t.m.defs.Resolve(root.Workflow, root.DefinitionVersion())
	if err != nil {
		t.ignore(ReasonSignalIgnored, "signal for a request whose definition is missing: "+err.Error())
		return
	}
	if why := checkSignal(wf, ev.Signal, ev.Step); why != "" {
		t.ignore(ReasonSignalIgnored, why)
		return
	}
	data := ev.Output
	if len(data) == 0 {
		data = emptyObject
	}
	if err := checkObject(data, t.m.maxPayload); err != nil {
		t.ignore(ReasonSignalIgnored, fmt.Sprintf("signal %q: data %s", ev.Signal, err))
		return
	}
	for _, s := range root.Signals {
		if s.Name == ev.Signal && s.Step == ev.Step {
			t.ignore(ReasonDuplicateSignal, fmt.Sprintf("signal %q%s already received at %s; the first wins", ev.Signal, forStep(ev.Step), s.Received.Format(time.RFC3339Nano)))
			return
		}
	}
	if len(root.Signals) >= schemas.MaxSignals {
		t.ignore(ReasonSignalIgnored, fmt.Sprintf("the request keeps at most %d signals", schemas.MaxSignals))
		return
	}
	root = t.mutable(ev.Request)
	sig := schemas.ReceivedSignal{Name: ev.Signal, Step: ev.Step, Data: data, Received: t.now}
	root.Signals = append(root.Signals, sig)
	for _, path := range t.waitingFor(root, wf.Graph, sig) {
		if t.rootFinished(ev.Request) {
			return
		}
		inst, step, ss, reason, _ := t.locate(ev.Request, path)
		if reason != "" || ss.Status != schemas.StepRunning && ss.Status != schemas.StepWaiting {
			continue // an earlier delivery of this signal finished it
		}
		inst = t.mutable(statekey.Format(inst.Request, inst.Path))
		t.signalled(inst, step, inst.Steps[step.Name], data)
		t.advance(inst, t.mustGraphOf(inst))
	}
}

func forStep(step string) string {
	if step == "" {
		return ""
	}
	return " for step " + step
}

// checkSignal says why signal name for step path (may be "") cannot be
// for any step of wf, or "" when it can.
func checkSignal(wf *topology.Workflow, name, path string) string {
	if !topology.NamePattern.MatchString(name) {
		return fmt.Sprintf("invalid signal name %q", name)
	}
	if path == "" {
		if !wf.WaitsFor(name) {
			return fmt.Sprintf("no step of workflow %q waits for signal %q", wf.Name, name)
		}
		return ""
	}
	inst, _ := statekey.SplitStep(path)
	for p := inst; p != ""; {
		parent, _, _, ok := statekey.ParentOf(p)
		if !ok {
			return fmt.Sprintf("invalid step path %q", path)
		}
		p = parent
	}
	st := wf.StepAt(statekey.Node(path))
	if st == nil || st.Wait == nil || st.Wait.Signal != name {
		return fmt.Sprintf("step %s of workflow %q does not wait for signal %q", statekey.Node(path), wf.Name, name)
	}
	return ""
}

// waitingFor returns the paths of the steps of the request that wait now
// (running, or between attempts) for sig, in a deterministic order: the
// instance's steps in declaration order, each fan-out's children in index
// order after the step holding them.
func (t *transition) waitingFor(root *schemas.Record, g *topology.Graph, sig schemas.ReceivedSignal) []string {
	var out []string
	var walk func(inst *schemas.Record, g *topology.Graph)
	walk = func(inst *schemas.Record, g *topology.Graph) {
		for _, step := range g.Steps {
			ss := inst.Steps[step.Name]
			if ss == nil {
				continue
			}
			path := statekey.StepPath(inst.Path, step.Name)
			if step.Wait != nil {
				if (ss.Status == schemas.StepRunning || ss.Status == schemas.StepWaiting) && sig.For(step.Wait.Signal, path) {
					out = append(out, path)
				}
				continue
			}
			if step.Task == nil || ss.Status != schemas.StepRunning {
				continue
			}
			for i := range ss.Children {
				child := t.get(statekey.Format(inst.Request, statekey.ChildPath(inst.Path, step.Name, i)))
				if child != nil && child.Status == schemas.Running {
					walk(child, step.Task.Graph)
				}
			}
		}
	}
	walk(root, g)
	return out
}

// wait starts attempt ss.Attempt of wait step at path of inst (mutable):
// it succeeds at once when the request kept a signal for it, else it
// waits, until its timeout when it has one.
func (t *transition) wait(inst *schemas.Record, step *topology.Step, ss *schemas.StepState, path string) {
	if root := t.get(inst.Request); root != nil {
		for _, sig := range root.Signals {
			if sig.For(step.Wait.Signal, path) {
				ss.Status, ss.Output, ss.Ended = schemas.StepSucceeded, sig.Data, t.now
				return
			}
		}
	}
	if step.Wait.Timeout > 0 {
		ss.Deadline = t.now.Add(step.Wait.Timeout)
		t.eff.SetTimers = append(t.eff.SetTimers, Timer{Request: inst.Request, Step: path, Attempt: ss.Attempt, Kind: TimerTimeout, At: ss.Deadline})
	}
}

// signalled completes wait step of inst (mutable; ss its state, running
// or between attempts) with a signal's data.
func (t *transition) signalled(inst *schemas.Record, step *topology.Step, ss *schemas.StepState, data []byte) {
	t.clearTimeout(inst, step.Name, ss)
	if !ss.RetryAt.IsZero() {
		t.eff.ClearTimers = append(t.eff.ClearTimers, Timer{Request: inst.Request, Step: statekey.StepPath(inst.Path, step.Name), Attempt: ss.Attempt, Kind: TimerRetry, At: ss.RetryAt})
		ss.RetryAt = time.Time{}
	}
	ss.Status, ss.Output, ss.Ended = schemas.StepSucceeded, data, t.now
}

// waitTimedOut handles the timeout of wait step of inst (mutable; ss its
// running state): onTimeout's output, or a retryable failure.
func (t *transition) waitTimedOut(inst *schemas.Record, step *topology.Step, ss *schemas.StepState) {
	if step.Wait.OnTimeout == nil {
		t.fail(inst, step, ss, fmt.Sprintf("no signal %q within %s", step.Wait.Signal, step.Wait.Timeout), true)
		return
	}
	t.clearTimeout(inst, step.Name, ss)
	ss.Status, ss.Output, ss.Ended = schemas.StepSucceeded, step.Wait.OnTimeout, t.now
	t.advance(inst, t.mustGraphOf(inst))
}

// ErrSignalRefused is wrapped by CheckSignal's errors: the request would
// ignore the signal (the API answers 409, `stepwise signal` exits 1).
var ErrSignalRefused = errors.New("stepwise: signal refused")

// CheckSignal says, from a view of a request's state, whether the request
// would take signal name for step path (""; every step waiting for name):
// nil when a step waits for it now or may wait for it later, else an
// error wrapping ErrSignalRefused that says why. wf is the workflow at
// the request's version, root its record, and instance returns the record
// of a fan-out child by path (nil when absent). It applies the rules of
// the machine (signal) plus one the machine cannot know ahead: a signal
// for a step that has finished waiting is refused.
func CheckSignal(wf *topology.Workflow, root *schemas.Record, instance func(path string) *schemas.Record, name, path string) error {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrSignalRefused, fmt.Sprintf(format, args...))
	}
	if root.Status != schemas.Running {
		return refuse("request %q is %s; only a running request takes signals", root.Request, root.Status)
	}
	if why := checkSignal(wf, name, path); why != "" {
		return refuse("%s", why)
	}
	for _, s := range root.Signals {
		if s.Name == name && s.Step == path {
			return refuse("signal %q%s already received at %s; the first wins", name, forStep(path), s.Received.Format(time.RFC3339Nano))
		}
	}
	if len(root.Signals) >= schemas.MaxSignals {
		return refuse("the request keeps at most %d signals", schemas.MaxSignals)
	}
	finished := func(ss *schemas.StepState) bool {
		return ss != nil && ss.Status != schemas.StepRunning && ss.Status != schemas.StepWaiting && ss.Status != schemas.StepPending
	}
	if path != "" {
		instPath, step := statekey.SplitStep(path)
		inst := root
		if instPath != "" {
			inst = instance(instPath)
		}
		switch {
		case inst == nil:
			return nil // its instance has not started: kept until it waits
		case inst.Status != schemas.Running:
			return refuse("step %s is in %s, which has %s", path, instPath, inst.Status)
		case finished(inst.Steps[step]):
			return refuse("step %s is %s; it waits no more", path, inst.Steps[step].Status)
		}
		return nil
	}
	for _, st := range wf.WaitSteps(name) {
		if wf.Graph.ByName[st.Name] != st || !finished(root.Steps[st.Name]) {
			return nil // in a task, or not finished: may still take it
		}
	}
	return refuse("every step waiting for signal %q has finished", name)
}
