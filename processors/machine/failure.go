package machine

import (
	"encoding/json"
	"slices"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/statekey"
	"github.com/stepwise-run/stepwise/topology"
)

// Failure handling. A plain step with continueOnFailure that fails for
// good (its retries spent, or an error that is not retryable) does not
// fail the request: it stays failed, with its error, marked Continued, and
// counts as done. Its dependents run as after a skipped dependency, but
// are not skipped for it: its output is absent from their merged input and
// from steps, so a when: can test for it ('!("charge" in steps)'). A retry
// of the request does not run it again (it is done). An expression of the
// step that fails to evaluate still fails the request: that is a fault of
// the definition, not of the work.

// continueAfter ends step (mutable ss of mutable inst) as a continued
// failure and advances the instance. It reports whether it did: only for a
// step with continueOnFailure.
func (t *transition) continueAfter(inst *schemas.Record, step *topology.Step, ss *schemas.StepState) bool {
	if !step.ContinueOnFailure {
		return false
	}
	ss.Status, ss.Continued = schemas.StepFailed, true
	t.advance(inst, t.mustGraphOf(inst))
	return true
}

// Tolerated failures. A plain step of a fan-out child that fails for good
// fails only its child when the child's fan-out step has tolerate: and
// the failed children, this one included, stay within its bound: the
// child's running tasks are revoked, it finishes failed (counted in the
// progress record's Done and Failed), and the join runs once every child
// has finished. The join's input has the succeeded children's outputs
// gathered as usual and the failed ones under topology.FailedKey. One
// failure beyond the bound fails the request.

// tolerated applies a for-good failure of step in child instance inst
// (mutable) as a tolerated one when it may be, and reports whether it was.
func (t *transition) tolerated(inst *schemas.Record, stepPath string, attempt int, msg string) bool {
	parentPath, stepName, _, ok := statekey.ParentOf(inst.Path)
	if !ok {
		return false
	}
	parent := t.get(statekey.Format(inst.Request, parentPath))
	if parent == nil {
		return false
	}
	g, err := t.graphOf(parent)
	if err != nil || g.ByName[stepName] == nil || g.ByName[stepName].Tolerate == nil {
		return false
	}
	progressKey := statekey.Format(inst.Request, statekey.StepPath(parentPath, stepName))
	progress := t.get(progressKey)
	if progress == nil || progress.Kind != schemas.KindFanout || progress.Failed+1 > g.ByName[stepName].Tolerate.Bound(progress.Children) {
		return false
	}
	t.mutable(progressKey).Failed++
	f := &schemas.Failure{Step: stepPath, Attempt: attempt, Message: msg}
	t.interrupt(inst, f, "fan-out child failed (tolerated): "+msg, map[string]bool{})
	t.finish(inst, schemas.Failed, nil, f)
	return true
}

// failedChild is one entry of a join's list of failed children.
type failedChild struct {
	Index   int    `json:"index"`
	ID      string `json:"id"`
	Step    string `json:"step,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	Error   string `json:"error"`
}

func failedEntry(i int, child *schemas.Record) failedChild {
	e := failedChild{Index: i, ID: child.ID}
	if f := child.Error; f != nil {
		e.Step, e.Attempt, e.Error = f.Step, f.Attempt, f.Message
	}
	return e
}

// reopenTolerated prepares a child that failed within its fan-out's bound
// (finished: no step states) for a retry of its request, which runs it
// again from the start: it is no longer counted as finished or failed in
// the progress record. Other children are left alone. child is mutable.
func (t *transition) reopenTolerated(child *schemas.Record) {
	if child.Status != schemas.StatusFailed || child.Steps != nil {
		return
	}
	child.Steps = map[string]*schemas.StepState{}
	parentPath, stepName, _, ok := statekey.ParentOf(child.Path)
	if !ok {
		return
	}
	if progress := t.mutable(statekey.Format(child.Request, statekey.StepPath(parentPath, stepName))); progress != nil && progress.Kind == schemas.KindFanout {
		progress.Done--
		progress.Failed--
	}
}

// The failure handler. When a request of a workflow with onFailure would
// fail (failRequest), it does not finish: the steps still running are
// stopped (revoked), the failure is kept in the root's Error, and the
// handler runs as plain step topology.OnFailureStep of the root, with the
// failure, the request's input and the outputs of the succeeded top-level
// steps as its input. Nothing else runs while it does (rootFinished says
// so). When it answers, the request fails with the kept failure; when it
// fails for good, with both errors. A failure while it runs, or of a
// request whose definition is gone, fails the request at once.

// handling says whether root's failure handler is running or waiting.
func handling(root *schemas.Record) bool {
	ss := root.Steps[topology.OnFailureStep]
	return ss != nil && (ss.Status == schemas.StepRunning || ss.Status == schemas.StepWaiting)
}

// handleFailure starts root's failure handler for f and reports whether it
// did. root must be running and not handling already.
func (t *transition) handleFailure(root *schemas.Record, f *schemas.Failure) bool {
	g, err := t.graphOf(root)
	if err != nil || g.OnFailure == nil || root.Path != "" {
		return false
	}
	root = t.mutable(root.Request)
	unsent := t.withdrawDispatches(root.Request)
	t.eff.SetTimers = slices.DeleteFunc(t.eff.SetTimers, func(tm Timer) bool { return tm.Request == root.Request })
	t.interrupt(root, f, "request failing: "+f.Message, unsent)
	root.Error = f
	attempt := 1
	if prev := root.Steps[topology.OnFailureStep]; prev != nil {
		attempt = prev.Attempt + 1
	}
	t.dispatch(root, g.OnFailure, attempt)
	return true
}

// handlerInput is the failure handler's input.
func (t *transition) handlerInput(root *schemas.Record) json.RawMessage {
	outputs := object{}
	g := t.mustGraphOf(root)
	for _, s := range g.Steps {
		if succeeded(root, s.Name) {
			outputs[s.Name] = t.outputOf(root, s)
		}
	}
	var failure struct {
		Step    string `json:"step,omitempty"`
		Attempt int    `json:"attempt,omitempty"`
		Error   string `json:"error"`
	}
	if f := root.Error; f != nil {
		failure.Step, failure.Attempt, failure.Error = f.Step, f.Attempt, f.Message
	}
	fb, _ := json.Marshal(failure)
	input := root.Input
	if len(input) == 0 {
		input = emptyObject
	}
	return encodeObject(object{"failure": fb, "input": input, "outputs": encodeObject(outputs)})
}

// handlerDone ends a request whose failure handler finished: answered
// (handlerErr "") or failed for good.
func (t *transition) handlerDone(root *schemas.Record, handlerErr string) {
	f := root.Error
	if f == nil {
		f = &schemas.Failure{Message: "failed"}
	}
	if handlerErr != "" {
		c := *f
		c.Message = f.Message + "; onFailure handler failed: " + handlerErr
		f = &c
	}
	t.finish(root, schemas.Failed, nil, f)
}
