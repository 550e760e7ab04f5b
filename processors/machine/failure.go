package machine

import (
	"github.com/stepwise-run/stepwise/schemas"
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
