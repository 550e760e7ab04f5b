package machine

import (
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/statekey"
	"github.com/stepwise-run/stepwise/topology"
)

// start creates a request and dispatches the steps that depend only on
// __start__.
func (t *transition) start(ev Event) {
	if !schemas.RequestID.MatchString(ev.Request) {
		// No record can be keyed by this id; answer with a completion so
		// a waiting client learns why.
		t.ignore(ReasonInvalidID, fmt.Sprintf("invalid request id %q", ev.Request))
		t.eff.Completions = append(t.eff.Completions, schemas.Completion{
			Request: ev.Request, Workflow: ev.Workflow, Status: schemas.Failed,
			Error:   &schemas.Failure{Message: fmt.Sprintf("invalid request id %q: must match %s", ev.Request, schemas.RequestIDPattern)},
			Started: t.now, Finished: t.now, Partition: ev.Partition,
		})
		return
	}
	if t.get(ev.Request) != nil {
		t.ignore(ReasonDuplicateStart, "duplicate start")
		return
	}
	root := &schemas.Record{
		Request: ev.Request, Workflow: ev.Workflow, ID: ev.Request,
		Partition: ev.Partition, Status: schemas.Running, Created: t.now,
		Steps: map[string]*schemas.StepState{}, Trace: ev.Trace, TraceParent: ev.TraceParent,
	}
	t.put(ev.Request, root)
	wf, version, err := t.m.defs.Resolve(ev.Workflow, ev.Version)
	if err != nil {
		t.finish(root, schemas.Failed, nil, &schemas.Failure{Message: strings.TrimPrefix(err.Error(), "stepwise: ")})
		return
	}
	root.Version = version
	if err := checkObject(ev.Input, t.m.maxPayload); err != nil {
		t.finish(root, schemas.Failed, nil, &schemas.Failure{Message: "invalid input: " + err.Error()})
		return
	}
	root.Input = ev.Input
	t.setDeadline(root, wf)
	t.advance(root, wf.Graph)
}

// result applies a worker's answer to the attempt it names.
func (t *transition) result(ev Event) {
	inst, step, ss, reason, why := t.locate(ev.Request, ev.Step)
	if reason != "" {
		t.ignore(reason, why)
		return
	}
	if step.Wait != nil || step.Sleep > 0 {
		t.ignore(ReasonUnknownStep, "step "+ev.Step+" is not dispatched (wait or sleep); no worker answers it")
		return
	}
	if ss.Status != schemas.StepRunning || ss.Attempt != ev.Attempt {
		t.ignore(ReasonStaleResult, fmt.Sprintf("stale result: step %s is %s at attempt %d, result for attempt %d", ev.Step, ss.Status, ss.Attempt, ev.Attempt))
		return
	}
	inst = t.mutable(statekey.Format(inst.Request, inst.Path))
	ss = inst.Steps[step.Name]
	ss.Worker = ev.Worker
	if ev.Error != nil {
		t.fail(inst, step, ss, ev.Error.Message, ev.Error.Retryable)
		return
	}
	if err := checkObject(ev.Output, t.m.maxPayload); err != nil {
		t.fail(inst, step, ss, "invalid result: "+err.Error(), true)
		return
	}
	t.clearTimeout(inst, step.Name, ss)
	ss.Status, ss.Output, ss.Ended, ss.Error = schemas.StepSucceeded, ev.Output, t.now, ""
	if step.Name == topology.OnFailureStep {
		t.handlerDone(inst, "") // failure.go
		return
	}
	t.advance(inst, t.mustGraphOf(inst))
}

// cancel finishes a running request as cancelled.
func (t *transition) cancel(ev Event) {
	root := t.get(ev.Request)
	if root == nil || root.Status != schemas.Running {
		t.ignore(ReasonCancelIgnored, "cancel of an unknown or finished request")
		return
	}
	if ev.Run != 0 && ev.Run != root.Run() {
		t.ignore(ReasonCancelIgnored, fmt.Sprintf("cancel of run %d; the request is in run %d", ev.Run, root.Run()))
		return
	}
	msg := "cancelled"
	if ev.Reason != "" {
		msg += ": " + ev.Reason
	}
	t.finish(t.mutable(ev.Request), schemas.Cancelled, nil, &schemas.Failure{Message: msg})
}

// retry runs a failed or cancelled request again, in the same record, on
// the same definition version: steps that failed or were interrupted run
// again (in a fan-out, only the children that did not succeed), with
// attempt numbers counting on; outputs of steps that succeeded are kept.
// With From, that top-level step and every step downstream of it run
// again too.
func (t *transition) retry(ev Event) {
	root := t.get(ev.Request)
	switch {
	case root == nil:
		t.ignore(ReasonRetryIgnored, "retry of an unknown request")
		return
	case root.Status == schemas.Running || root.Status == schemas.StatusSucceeded:
		t.ignore(ReasonRetryIgnored, "retry of a request that is "+string(root.Status))
		return
	case ev.Run != root.Run():
		t.ignore(ReasonRetryIgnored, fmt.Sprintf("retry of run %d; the request is in run %d", ev.Run, root.Run()))
		return
	}
	g, err := t.graphOf(root)
	if err != nil {
		t.ignore(ReasonRetryIgnored, "cannot retry: "+err.Error())
		return
	}
	var again map[string]bool
	if ev.From != "" {
		if again, err = g.RetryFrom(ev.From); err != nil {
			t.ignore(ReasonRetryIgnored, "cannot retry: "+err.Error())
			return
		}
	}
	root = t.mutable(ev.Request)
	t.eff.ClearTimers = append(t.eff.ClearTimers, TimersOf(root)...) // the expiry
	root.Status, root.Output, root.Error, root.ExpireAt = schemas.Running, nil, nil, time.Time{}
	root.Retries++
	t.setDeadline(root, nil) // each run has the whole deadline
	for name := range again {
		if ss := root.Steps[name]; ss != nil {
			root.Steps[name] = &schemas.StepState{Status: schemas.StepPending, Attempt: ss.Attempt}
		}
	}
	t.resume(root, g)
}

// resume restarts what did not succeed in inst (mutable) and then advances
// it: failed, cancelled or waiting plain steps get their next attempt;
// fan-out steps resume their unfinished children and start those never
// created (a request that failed while starting them).
func (t *transition) resume(inst *schemas.Record, g *topology.Graph) {
	for _, step := range g.Steps {
		ss := inst.Steps[step.Name]
		if ss == nil || done(ss) || ss.Status == schemas.StepPending || t.regate(inst, step, ss) {
			continue
		}
		if step.Task == nil {
			if t.ready(inst, step) {
				t.dispatch(inst, step, ss.Attempt+1)
			} else {
				inst.Steps[step.Name] = &schemas.StepState{Status: schemas.StepPending, Attempt: ss.Attempt}
			}
			if t.rootFinished(inst.Request) {
				return
			}
			continue
		}
		if ss.Children == 0 {
			// The fan-out failed as it began (its list was not a list, its
			// input too large): it begins again, on the same input.
			inst.Steps[step.Name] = &schemas.StepState{Status: schemas.StepPending}
			continue
		}
		ss.Status, ss.Ended = schemas.StepRunning, time.Time{}
		var fields map[string]json.RawMessage
		var elems []json.RawMessage
		for i := range ss.Children {
			key := statekey.Format(inst.Request, statekey.ChildPath(inst.Path, step.Name, i))
			child := t.get(key)
			if child == nil {
				if elems == nil {
					in, _, _ := t.stepInput(inst, step) // it evaluated when the fan-out began
					fields = decodeObject(in)
					_ = json.Unmarshal(fields[step.Task.ItemListKey], &elems)
					delete(fields, step.Task.ItemListKey)
				}
				if i < len(elems) {
					t.startChild(inst, step, fields, elems[i], i)
				}
			} else if child.Status != schemas.StatusSucceeded {
				child = t.mutable(key)
				t.reopenTolerated(child)
				child.Status, child.Error = schemas.Running, nil
				t.resume(child, step.Task.Graph)
			}
			if t.rootFinished(inst.Request) {
				return
			}
		}
		progressKey := statekey.Format(inst.Request, statekey.StepPath(inst.Path, step.Name))
		t.spawnedAll(progressKey)
		if t.get(progressKey) == nil {
			// Every child had succeeded; the join did not run.
			ss.Status, ss.Done, ss.Ended = schemas.StepSucceeded, ss.Children, t.now
		}
	}
	t.advance(inst, g)
}

// timer handles a due timer that still matches the state.
func (t *transition) timer(ev Event) {
	if ev.Timer == TimerSpawn {
		t.spawnNext(ev)
		return
	}
	if ev.Timer == TimerExpire {
		root := t.get(ev.Request)
		if root == nil || root.Status == schemas.Running || root.ExpireAt.IsZero() || t.now.Before(root.ExpireAt) {
			t.ignore(ReasonStaleTimer, "stale expiry timer")
			return
		}
		t.forgetChildren(root) // kept for a retry of a failed or cancelled request
		t.put(ev.Request, nil)
		return
	}
	if ev.Timer == TimerDeadline {
		t.deadlinePassed(ev)
		return
	}
	inst, step, ss, reason, why := t.locate(ev.Request, ev.Step)
	if reason != "" {
		t.ignore(ReasonStaleTimer, string(reason)+": "+why)
		return
	}
	switch {
	case ev.Timer == TimerRetry && ss.Status == schemas.StepWaiting && ss.Attempt == ev.Attempt:
		inst = t.mutable(statekey.Format(inst.Request, inst.Path))
		t.dispatch(inst, step, ss.Attempt+1)
		if inst.Steps[step.Name].Status == schemas.StepSucceeded { // a wait step that found its signal
			t.advance(inst, t.mustGraphOf(inst))
		}
	case ev.Timer == TimerHeartbeat && ss.Status == schemas.StepRunning && ss.Attempt == ev.Attempt && heartbeatMissed(ss, t.now):
		inst = t.mutable(statekey.Format(inst.Request, inst.Path))
		ss = inst.Steps[step.Name]
		t.fail(inst, step, ss, fmt.Sprintf("no heartbeat for %s", step.HeartbeatTimeout), true)
	case ev.Timer == TimerTimeout && step.Sleep > 0 && ss.Status == schemas.StepRunning && ss.Attempt == ev.Attempt:
		inst = t.mutable(statekey.Format(inst.Request, inst.Path))
		t.slept(inst, step, inst.Steps[step.Name])
	case ev.Timer == TimerTimeout && step.Wait != nil && ss.Status == schemas.StepRunning && ss.Attempt == ev.Attempt:
		inst = t.mutable(statekey.Format(inst.Request, inst.Path))
		t.waitTimedOut(inst, step, inst.Steps[step.Name])
	case ev.Timer == TimerTimeout && ss.Status == schemas.StepRunning && ss.Attempt == ev.Attempt:
		inst = t.mutable(statekey.Format(inst.Request, inst.Path))
		ss = inst.Steps[step.Name]
		t.fail(inst, step, ss, fmt.Sprintf("timed out after %s", step.Timeout), true)
	default:
		t.ignore(ReasonStaleTimer, "stale timer")
	}
}

// locate finds the running instance and the plain step a step path names,
// or says why there is none.
func (t *transition) locate(request, stepPath string) (*schemas.Record, *topology.Step, *schemas.StepState, Reason, string) {
	root := t.get(request)
	if root == nil {
		return nil, nil, nil, ReasonUnknownRequest, "unknown request"
	}
	if root.Status != schemas.Running {
		return nil, nil, nil, ReasonFinishedRequest, "request already " + string(root.Status)
	}
	instPath, name := statekey.SplitStep(stepPath)
	inst := root
	if instPath != "" {
		inst = t.get(statekey.Format(request, instPath))
	}
	if inst == nil || inst.Status != schemas.Running || inst.Kind != "" {
		return nil, nil, nil, ReasonUnknownInstance, "unknown or finished instance " + instPath
	}
	g, err := t.graphOf(inst)
	if err != nil {
		// The version this request runs on is gone (the definitions
		// topic lost it). Guessing another would run a graph the
		// request did not start under: fail it, saying why.
		t.failRequest(request, &schemas.Failure{Step: stepPath, Message: "cannot continue: " + strings.TrimPrefix(err.Error(), "stepwise: ")})
		return nil, nil, nil, ReasonWorkflowGone, "definition missing: " + err.Error()
	}
	step := g.ByName[name]
	if name == topology.OnFailureStep && instPath == "" {
		step = g.OnFailure // failure.go
	}
	ss := inst.Steps[name]
	if step == nil || step.Task != nil || ss == nil {
		return nil, nil, nil, ReasonUnknownStep, "unknown step " + stepPath
	}
	return inst, step, ss, "", ""
}

// graphOf returns the graph an instance runs, at the definition version of
// its request, or why it cannot be found.
func (t *transition) graphOf(inst *schemas.Record) (*topology.Graph, error) {
	wf, _, err := t.m.defs.Resolve(inst.Workflow, inst.DefinitionVersion())
	if err != nil {
		return nil, err
	}
	if inst.Task == "" {
		return wf.Graph, nil
	}
	if task := wf.Tasks[inst.Task]; task != nil {
		return task.Graph, nil
	}
	return nil, fmt.Errorf("workflow %q version %d has no task %q", inst.Workflow, inst.DefinitionVersion(), inst.Task)
}

// mustGraphOf is graphOf for an instance whose graph was found earlier in
// the same transition (definitions never lose a version while one Apply
// runs).
func (t *transition) mustGraphOf(inst *schemas.Record) *topology.Graph {
	g, err := t.graphOf(inst)
	if err != nil {
		panic(fmt.Sprintf("stepwise: graph of %s vanished within one transition: %v", statekey.Format(inst.Request, inst.Path), err))
	}
	return g
}

// advance starts every step of inst whose dependencies have all succeeded,
// repeating while steps complete at once (empty fan-outs), and finishes the
// instance when every step has succeeded. inst must be mutable.
func (t *transition) advance(inst *schemas.Record, g *topology.Graph) {
	for progressed := true; progressed && inst.Status == schemas.Running; {
		progressed = false
		finished := 0
		for _, step := range g.Steps {
			ss := inst.Steps[step.Name]
			if ss != nil && ss.Status != schemas.StepPending {
				if done(ss) {
					finished++
				}
				continue
			}
			if !t.ready(inst, step) {
				continue
			}
			t.begin(inst, step)
			if inst.Status != schemas.Running || t.rootFinished(inst.Request) {
				return // the step failed the request (input too large, not a list)
			}
			if done(inst.Steps[step.Name]) {
				progressed = true
			}
		}
		if finished == len(g.Steps) {
			outs := make([]json.RawMessage, 0, len(g.Terminal))
			for _, s := range g.Terminal {
				if succeeded(inst, s.Name) {
					outs = append(outs, t.outputOf(inst, s))
				}
			}
			out := merge(outs)
			if g.Output != nil {
				var err error
				if out, err = t.workflowOutput(inst, g); err != nil {
					t.finish(inst, schemas.Failed, nil, &schemas.Failure{Message: err.Error()})
					return
				}
			}
			if inst.Path == "" && len(out) > t.m.maxPayload {
				t.finish(inst, schemas.Failed, nil, &schemas.Failure{Message: fmt.Sprintf("output of %d bytes is over the %d-byte limit", len(out), t.m.maxPayload)})
				return
			}
			t.finish(inst, schemas.Succeeded, out, nil)
			return
		}
	}
}

func (t *transition) ready(inst *schemas.Record, step *topology.Step) bool {
	for _, d := range step.Depends {
		if d == topology.Start {
			continue
		}
		if !done(inst.Steps[d]) {
			return false
		}
	}
	return true
}

// inputOf is the merge of step's dependencies' outputs.
func (t *transition) inputOf(inst *schemas.Record, step *topology.Step) json.RawMessage {
	parts := make([]json.RawMessage, 0, len(step.Depends))
	for _, d := range step.Depends {
		if d == topology.Start {
			parts = append(parts, inst.Input)
			continue
		}
		if !succeeded(inst, d) {
			continue // skipped or a continued failure: absent, as if it had answered nothing
		}
		parts = append(parts, t.outputOf(inst, t.mustGraphOf(inst).ByName[d]))
	}
	return merge(parts)
}

// outputOf is a succeeded step's output: stored for a plain step, gathered
// from the children for a fan-out step.
func (t *transition) outputOf(inst *schemas.Record, step *topology.Step) json.RawMessage {
	ss := inst.Steps[step.Name]
	if step.Task == nil {
		return ss.Output
	}
	if ss.Output != nil { // fan-out over a missing list
		return ss.Output
	}
	// As in the original manager: each child's singular key is gathered,
	// in element order, and a child that returns no such key is left out
	// of the list; the children's other keys are merged, the lowest
	// element index winning a repeated key.
	task := step.Task
	gathered := make([]json.RawMessage, 0, ss.Children)
	out := object{}
	var failed []failedChild // failure.go
	for i := range ss.Children {
		child := t.get(statekey.Format(inst.Request, statekey.ChildPath(inst.Path, step.Name, i)))
		if child == nil {
			continue
		}
		if step.Tolerate != nil && child.Status == schemas.StatusFailed {
			failed = append(failed, failedEntry(i, child))
			continue
		}
		for k, v := range decodeObject(child.Output) {
			if k == task.ItemKey {
				gathered = append(gathered, v)
				continue
			}
			if _, seen := out[k]; !seen {
				out[k] = v
			}
		}
	}
	list, _ := json.Marshal(gathered)
	out[task.ItemListKey] = list
	if step.Tolerate != nil {
		if failed == nil {
			failed = []failedChild{}
		}
		out[topology.FailedKey(task.ItemListKey)], _ = json.Marshal(failed)
	}
	return encodeObject(out)
}

// begin starts one step: dispatches a plain step, or starts the children of
// a fan-out step.
func (t *transition) begin(inst *schemas.Record, step *topology.Step) {
	if !t.gate(inst, step) {
		return
	}
	if step.Task == nil {
		attempt := 1
		if prev := inst.Steps[step.Name]; prev != nil {
			attempt = prev.Attempt + 1 // pending: numbers count on across runs
		}
		t.dispatch(inst, step, attempt)
		return
	}
	input, e, err := t.stepInput(inst, step)
	if err != nil {
		t.failStepExpr(inst, step, e, err)
		return
	}
	ss := &schemas.StepState{Status: schemas.StepRunning, Started: t.now}
	inst.Steps[step.Name] = ss
	fields := decodeObject(input)
	raw, ok := fields[step.Task.ItemListKey]
	if !ok {
		// Missing: nothing to fan out over, as in the original manager.
		ss.Status, ss.Ended, ss.Output = schemas.StepSucceeded, t.now, emptyObject
		return
	}
	var elems []json.RawMessage
	if json.Unmarshal(raw, &elems) != nil || elems == nil {
		// Present but not a list: the step before it answered something
		// else than it meant to. The original manager skipped the
		// fan-out silently; failing says where the fault is.
		ss.Status, ss.Ended = schemas.StepFailed, t.now
		t.failRequest(inst.Request, &schemas.Failure{Step: statekey.StepPath(inst.Path, step.Name),
			Message: fmt.Sprintf("fan-out over %q needs a list, but the step's input has %s there", step.Task.ItemListKey, describeJSON(raw))})
		return
	}
	if len(elems) == 0 {
		ss.Status, ss.Ended = schemas.StepSucceeded, t.now
		return
	}
	ss.Children = len(elems)
	progress := statekey.StepPath(inst.Path, step.Name)
	t.put(statekey.Format(inst.Request, progress), &schemas.Record{
		Kind: schemas.KindFanout, Request: inst.Request, Workflow: inst.Workflow, Version: inst.Version, Path: progress,
		Partition: inst.Partition, Status: schemas.Running, Created: t.now, Children: len(elems),
	})
	delete(fields, step.Task.ItemListKey)
	t.spawn(inst, step, fields, elems, 0)
}

// startChild creates child i of fan-out step of inst over elem and starts
// it. fields is the step's input without the list key.
func (t *transition) startChild(inst *schemas.Record, step *topology.Step, fields map[string]json.RawMessage, elem json.RawMessage, i int) {
	fields[step.Task.ItemKey] = elem
	path := statekey.ChildPath(inst.Path, step.Name, i)
	key := statekey.Format(inst.Request, path)
	id := elementID(elem)
	if id == "" {
		id = key
	}
	child := &schemas.Record{
		Request: inst.Request, Workflow: inst.Workflow, Version: inst.Version, Path: path,
		Task: step.Task.Name, ID: id, Partition: inst.Partition,
		Status: schemas.Running, Input: encodeObject(fields), Created: t.now,
		Steps: map[string]*schemas.StepState{},
	}
	t.put(key, child)
	t.advance(child, step.Task.Graph)
}

func (t *transition) rootFinished(request string) bool {
	r := t.get(request)
	return r == nil || r.Status != schemas.Running || handling(r)
}

// dispatch sends attempt n of a plain step.
func (t *transition) dispatch(inst *schemas.Record, step *topology.Step, attempt int) {
	input, e, evalErr := t.stepInput(inst, step)
	ss := &schemas.StepState{Status: schemas.StepRunning, Attempt: attempt, Started: t.now}
	if attempt != 1 {
		ss.First = attempt // a new run's first attempt
	}
	if prev := inst.Steps[step.Name]; prev != nil {
		ss.Error = prev.Error
		if prev.Status == schemas.StepWaiting {
			ss.First = prev.First // the next attempt of the same run
		}
		ss.Earlier, ss.EarlierDropped = prev.Earlier, prev.EarlierDropped
		if prev.Attempt > 0 && prev.Status != schemas.StepSucceeded && prev.Status != schemas.StepPending {
			outcome := "failed"
			if prev.Status == schemas.StepCancelled {
				outcome = "cancelled"
			}
			ss.Earlier, ss.EarlierDropped = appendEarlier(ss.Earlier, ss.EarlierDropped,
				schemas.Attempt{Attempt: prev.Attempt, Outcome: outcome, Error: prev.Error, Worker: prev.Worker, Started: prev.Started, Ended: prev.Ended})
		}
	}
	inst.Steps[step.Name] = ss
	path := statekey.StepPath(inst.Path, step.Name)
	if evalErr != nil {
		ss.Status, ss.Ended, ss.Error = schemas.StepFailed, t.now, exprFailure(e, evalErr)
		t.failRequest(inst.Request, &schemas.Failure{Step: path, Attempt: attempt, Message: ss.Error})
		return
	}
	if step.Wait != nil {
		t.wait(inst, step, ss, path)
		return
	}
	if step.Sleep > 0 {
		t.sleep(inst, step, ss, path)
		return
	}
	if len(input) > t.m.maxPayload {
		ss.Status, ss.Ended = schemas.StepFailed, t.now
		t.failRequest(inst.Request, &schemas.Failure{Step: path, Attempt: attempt,
			Message: fmt.Sprintf("input of %d bytes is over the %d-byte limit", len(input), t.m.maxPayload)})
		return
	}
	if step.Timeout > 0 {
		ss.Deadline = t.now.Add(step.Timeout)
		t.eff.SetTimers = append(t.eff.SetTimers, Timer{Request: inst.Request, Step: path, Attempt: attempt, Kind: TimerTimeout, At: ss.Deadline})
	}
	t.eff.Dispatches = append(t.eff.Dispatches, Dispatch{
		Queue: step.Queue, Request: inst.Request, Workflow: inst.Workflow,
		Step: path, Attempt: attempt, Instance: inst.ID, Input: input,
		Deadline: ss.Deadline, Partition: inst.Partition, Trace: t.traceOf(inst),
		Heartbeat: t.armHeartbeat(inst, step, ss, path),
	})
}

// traceOf returns the trace context of the request inst belongs to.
func (t *transition) traceOf(inst *schemas.Record) string {
	if inst.Path == "" && inst.Kind == "" {
		return inst.Trace
	}
	if root := t.get(inst.Request); root != nil {
		return root.Trace
	}
	return ""
}

// fail records a failed attempt: schedules a retry when the policy allows,
// else fails the request. inst must be mutable and ss its state of step.
func (t *transition) fail(inst *schemas.Record, step *topology.Step, ss *schemas.StepState, msg string, retryable bool) {
	t.clearTimeout(inst, step.Name, ss)
	ss.Error, ss.Ended = msg, t.now
	path := statekey.StepPath(inst.Path, step.Name)
	if retryable && ss.Attempt-ss.FirstAttempt()+1 < step.Retry.MaxAttempts {
		ss.Status = schemas.StepWaiting
		ss.RetryAt = t.now.Add(step.Retry.Backoff(ss.Attempt + 1))
		t.eff.SetTimers = append(t.eff.SetTimers, Timer{Request: inst.Request, Step: path, Attempt: ss.Attempt, Kind: TimerRetry, At: ss.RetryAt})
		return
	}
	ss.Status = schemas.StepFailed
	if retryable {
		msg = fmt.Sprintf("%s (attempt %d of %d)", msg, ss.Attempt-ss.FirstAttempt()+1, step.Retry.MaxAttempts)
	}
	if ss.Error = msg; t.continueAfter(inst, step, ss) || t.tolerated(inst, path, ss.Attempt, msg) {
		return
	}
	t.failRequest(inst.Request, &schemas.Failure{Step: path, Attempt: ss.Attempt, Message: msg})
}

func (t *transition) clearTimeout(inst *schemas.Record, name string, ss *schemas.StepState) {
	if ss.Deadline.IsZero() {
		return
	}
	t.eff.ClearTimers = append(t.eff.ClearTimers, Timer{Request: inst.Request, Step: statekey.StepPath(inst.Path, name), Attempt: ss.Attempt, Kind: TimerTimeout, At: ss.Deadline})
	ss.Deadline = time.Time{}
}

func (t *transition) failRequest(request string, f *schemas.Failure) {
	root := t.get(request)
	if root == nil || root.Status != schemas.Running {
		return
	}
	if handling(root) || f.Step == topology.OnFailureStep {
		t.handlerDone(t.mutable(request), f.Message) // failure.go
		return
	}
	if t.handleFailure(root, f) {
		return
	}
	t.finish(t.mutable(request), schemas.Failed, nil, f)
}

// finish ends an instance. A child that succeeds reports to its parent's
// fan-out step; the root (whatever the status) completes the request:
// children are forgotten, the completion is emitted and the root record is
// kept until its expiry. inst must be mutable.
func (t *transition) finish(inst *schemas.Record, status schemas.CompletionStatus, output json.RawMessage, f *schemas.Failure) {
	t.eff.ClearTimers = append(t.eff.ClearTimers, TimersOf(inst)...)
	inst.Status, inst.Output, inst.Error = schemas.Status(status), output, f
	if inst.Path != "" {
		// The output is all the parent needs: forget the details.
		t.forgetChildren(inst)
		inst.Steps = nil
		t.childDone(inst)
		return
	}
	// Steps this transition dispatched before the request ended (a step
	// earlier in the graph than the one that failed it) must not run.
	unsent := t.withdrawDispatches(inst.Request)
	if status == schemas.Succeeded {
		t.forgetChildren(inst)
	} else {
		// Kept until expiry, for a retry to run only what did not
		// succeed; steps still running are told to stop.
		reason := "request " + string(status)
		if f != nil {
			reason += ": " + f.Message
		}
		t.interrupt(inst, f, reason, unsent)
	}
	t.eff.SetTimers = slices.DeleteFunc(t.eff.SetTimers, func(tm Timer) bool { return tm.Request == inst.Request })
	inst.ExpireAt = t.now.Add(t.retentionOf(inst))
	t.eff.SetTimers = append(t.eff.SetTimers, Timer{Request: inst.Request, Kind: TimerExpire, At: inst.ExpireAt})
	t.eff.Completions = append(t.eff.Completions, schemas.Completion{
		Request: inst.Request, Workflow: inst.Workflow, Version: inst.Version, Status: status,
		Output: output, Error: f, Started: inst.Created, Finished: t.now,
		Partition: inst.Partition,
	})
}

// withdrawDispatches takes back the dispatches of request this transition
// made so far and returns their step paths: tasks never produced, which
// nothing needs to revoke.
func (t *transition) withdrawDispatches(request string) map[string]bool {
	unsent := map[string]bool{}
	t.eff.Dispatches = slices.DeleteFunc(t.eff.Dispatches, func(d Dispatch) bool {
		if d.Request == request {
			unsent[d.Step] = true
			return true
		}
		return false
	})
	return unsent
}

// appendEarlier adds a finished attempt to a step's earlier attempts,
// keeping the first MaxEarlierAttempts - 1 and the latest, and counting
// those left out.
func appendEarlier(list []schemas.Attempt, dropped int, a schemas.Attempt) ([]schemas.Attempt, int) {
	out := make([]schemas.Attempt, 0, min(len(list)+1, schemas.MaxEarlierAttempts))
	out = append(out, list...)
	if len(out) == schemas.MaxEarlierAttempts {
		out = out[:len(out)-1]
		dropped++
	}
	return append(out, a), dropped
}

// retentionOf is how long the finished request inst is remembered: its
// workflow's retention, else the machine's.
func (t *transition) retentionOf(inst *schemas.Record) time.Duration {
	if wf, _, err := t.m.defs.Resolve(inst.Workflow, inst.DefinitionVersion()); err == nil && wf.Retention > 0 {
		return wf.Retention
	}
	return t.m.retention
}

// interrupt marks every running or waiting step of inst, and of its
// unfinished children, cancelled, and revokes the tasks in flight (those
// in unsent were never produced). A child holding the step that failed the
// request is marked failed, the others cancelled. inst must be mutable.
func (t *transition) interrupt(inst *schemas.Record, f *schemas.Failure, reason string, unsent map[string]bool) {
	g, _ := t.graphOf(inst) // nil when the definition is gone: nothing to revoke then
	for name, ss := range sortedSteps(inst.Steps) {
		path := statekey.StepPath(inst.Path, name)
		switch ss.Status {
		case schemas.StepRunning:
			if g != nil && g.ByName[name] != nil && g.ByName[name].Task == nil && g.ByName[name].Queue != "" && !unsent[path] {
				t.eff.Revokes = append(t.eff.Revokes, Revoke{Queue: g.ByName[name].Queue, Request: inst.Request, Workflow: inst.Workflow,
					Step: path, Attempt: ss.Attempt, Reason: reason})
			} else if g != nil && name == topology.OnFailureStep && inst.Path == "" && g.OnFailure != nil && !unsent[path] {
				// The failure handler (failure.go), cancelled while it ran.
				t.eff.Revokes = append(t.eff.Revokes, Revoke{Queue: g.OnFailure.Queue, Request: inst.Request, Workflow: inst.Workflow,
					Step: path, Attempt: ss.Attempt, Reason: reason})
			}
		case schemas.StepWaiting, schemas.StepPending:
		default:
			continue
		}
		ss.Status, ss.Ended, ss.Deadline, ss.RetryAt = schemas.StepCancelled, t.now, time.Time{}, time.Time{}
		if ss.Children == 0 {
			continue
		}
		for i := range ss.Children {
			key := statekey.Format(inst.Request, statekey.ChildPath(inst.Path, name, i))
			if c := t.get(key); c == nil || c.Status != schemas.Running {
				continue
			}
			child := t.mutable(key)
			t.eff.ClearTimers = append(t.eff.ClearTimers, TimersOf(child)...)
			child.Status = schemas.StatusCancelled
			if f != nil && strings.HasPrefix(f.Step, child.Path+"/") {
				child.Status = schemas.StatusFailed
				ss.Status = schemas.StepFailed
			}
			t.interrupt(child, f, reason, unsent)
		}
	}
}

// childDone counts a succeeded child in its fan-out's progress record and,
// when it was the last one, runs the join in the parent.
func (t *transition) childDone(child *schemas.Record) {
	parentPath, stepName, _, ok := statekey.ParentOf(child.Path)
	if !ok {
		return
	}
	progressKey := statekey.Format(child.Request, statekey.StepPath(parentPath, stepName))
	progress := t.mutable(progressKey)
	if progress == nil || progress.Kind != schemas.KindFanout {
		return
	}
	progress.Done++
	if progress.Done < progress.Children {
		return
	}
	t.put(progressKey, nil)
	parent := t.mutable(statekey.Format(child.Request, parentPath))
	if parent == nil || parent.Status != schemas.Running {
		return
	}
	ss := parent.Steps[stepName]
	if ss == nil || ss.Status != schemas.StepRunning {
		return
	}
	ss.Done, ss.Status, ss.Ended = ss.Children, schemas.StepSucceeded, t.now
	g, err := t.graphOf(parent)
	if err != nil {
		t.failRequest(child.Request, &schemas.Failure{Step: statekey.StepPath(parentPath, stepName), Message: "cannot continue: " + strings.TrimPrefix(err.Error(), "stepwise: ")})
		return
	}
	t.advance(parent, g)
}

// forgetChildren tombstones every descendant record of a request.
func (t *transition) forgetChildren(inst *schemas.Record) {
	for name, ss := range sortedSteps(inst.Steps) {
		if ss.Children == 0 {
			continue
		}
		if key := statekey.Format(inst.Request, statekey.StepPath(inst.Path, name)); t.get(key) != nil {
			t.put(key, nil)
		}
		for i := range ss.Children {
			key := statekey.Format(inst.Request, statekey.ChildPath(inst.Path, name, i))
			child := t.get(key)
			if child == nil {
				continue
			}
			t.forgetChildren(child)
			t.eff.ClearTimers = append(t.eff.ClearTimers, TimersOf(child)...)
			t.put(key, nil)
		}
	}
}

// sortedSteps iterates steps by name, so that effects come out in the same
// order on every run.
func sortedSteps(m map[string]*schemas.StepState) iter.Seq2[string, *schemas.StepState] {
	return func(yield func(string, *schemas.StepState) bool) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !yield(k, m[k]) {
				return
			}
		}
	}
}
