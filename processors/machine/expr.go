package machine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/statekey"
	"github.com/stepwise-run/stepwise/topology"
)

// Conditions and mappings. The topology compiled every expression at load;
// here they only run, over the instance's input and the outputs of the
// succeeded steps they may see. The rules (docs/expressions.md):
//
//   - A step whose when: is false is skipped. A step all of whose
//     dependencies were skipped is skipped too, without evaluating its own
//     when:. A step with at least one succeeded dependency runs (when its
//     when: allows), its skipped dependencies absent from its input and
//     from steps.
//   - A skipped step counts as done: an instance whose steps all succeeded
//     or were skipped finishes, its output the merge of its succeeded
//     terminal steps (or the workflow's output: mapping); a skipped fan-out
//     step has no output, not an empty list.
//   - An expression that fails to evaluate (a missing field used in
//     arithmetic, a type mismatch, over its memory budget) fails the step
//     at once, without retries (it would fail the same way again), with
//     the expression and the reason; the request fails.

// exprScratch is what one transition reuses across expressions: one
// virtual machine, and the environment of the step it last built one for
// (a step's when: and input: see the same one).
type exprScratch struct {
	vm      vm.VM
	envKey  string
	env     map[string]any
	envInst *schemas.Record
}

// gate decides whether step, ready to begin, runs. It returns false when
// the step was skipped or failed (then recorded in inst).
func (t *transition) gate(inst *schemas.Record, step *topology.Step) bool {
	skip := !dependsOnStart(step)
	if skip {
		for _, d := range step.Depends {
			if !skipped(inst, d) {
				skip = false // succeeded, or failed and continued past (failure.go)
				break
			}
		}
	}
	if !skip && step.When != nil {
		v, err := t.runExpr(step.When, t.stepEnv(inst, step))
		if err != nil {
			t.failStepExpr(inst, step, step.When, err)
			return false
		}
		ok, isBool := v.(bool)
		if !isBool {
			t.failStepExpr(inst, step, step.When, fmt.Errorf("expected a boolean, got %s", describeValue(v)))
			return false
		}
		skip = !ok
	}
	if !skip {
		return true
	}
	ss := &schemas.StepState{Status: schemas.StepSkipped, Started: t.now, Ended: t.now}
	if prev := inst.Steps[step.Name]; prev != nil {
		ss.Attempt, ss.Earlier, ss.EarlierDropped = prev.Attempt, prev.Earlier, prev.EarlierDropped
	}
	inst.Steps[step.Name] = ss
	return false
}

// regate makes a step with expressions that a retry resumes, and that
// never started children, pending, so that advance begins it again through
// gate (its when: and input: are evaluated again) rather than dispatching
// it or declaring an empty fan-out done. It says whether it did.
func (t *transition) regate(inst *schemas.Record, step *topology.Step, ss *schemas.StepState) bool {
	if ss.Children != 0 || (step.When == nil && step.Input == nil) {
		return false
	}
	inst.Steps[step.Name] = &schemas.StepState{Status: schemas.StepPending, Attempt: ss.Attempt,
		Error: ss.Error, Earlier: ss.Earlier, EarlierDropped: ss.EarlierDropped}
	return true
}

func dependsOnStart(step *topology.Step) bool {
	for _, d := range step.Depends {
		if d == topology.Start {
			return true
		}
	}
	return false
}

func skipped(inst *schemas.Record, name string) bool {
	ss := inst.Steps[name]
	return ss != nil && ss.Status == schemas.StepSkipped
}

func succeeded(inst *schemas.Record, name string) bool {
	ss := inst.Steps[name]
	return ss != nil && ss.Status == schemas.StepSucceeded
}

// done says whether a step's state counts as finished for its instance:
// succeeded, skipped, or failed and continued past (failure.go).
func done(ss *schemas.StepState) bool {
	return ss != nil && (ss.Status == schemas.StepSucceeded || ss.Status == schemas.StepSkipped ||
		(ss.Status == schemas.StepFailed && ss.Continued))
}

// stepInput is the input step is given: its input: mapping evaluated, or
// the merge of its dependencies' outputs.
func (t *transition) stepInput(inst *schemas.Record, step *topology.Step) (json.RawMessage, *topology.Expr, error) {
	if step.Name == topology.OnFailureStep {
		return t.handlerInput(inst), nil, nil // failure.go
	}
	if step.Input == nil {
		return t.inputOf(inst, step), nil, nil
	}
	return t.evalMappings(step.Input, t.stepEnv(inst, step))
}

// stepEnv is the environment of step's expressions, built once per
// transition: a step's dependencies do not change while it begins.
func (t *transition) stepEnv(inst *schemas.Record, step *topology.Step) map[string]any {
	s := &t.exprs
	if s.env != nil && s.envInst == inst && s.envKey == step.Name {
		return s.env
	}
	s.env, s.envInst, s.envKey = t.exprEnv(inst, step.Depends), inst, step.Name
	return s.env
}

// evalMappings builds the JSON object of a mapping, or names the
// expression that failed.
func (t *transition) evalMappings(ms []topology.Mapping, env map[string]any) (json.RawMessage, *topology.Expr, error) {
	out := make(object, len(ms))
	for _, m := range ms {
		v, err := t.runExpr(m.Expr, env)
		if err != nil {
			return nil, m.Expr, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, m.Expr, fmt.Errorf("result is not JSON: %v", err)
		}
		out[m.Key] = b
	}
	return encodeObject(out), nil, nil
}

// exprEnv is what an expression of inst sees: its input, and the outputs
// of the succeeded steps among names.
func (t *transition) exprEnv(inst *schemas.Record, names []string) map[string]any {
	input := jsonValue(inst.Input)
	steps := map[string]any{}
	var g *topology.Graph
	for _, d := range names {
		ss := inst.Steps[d]
		if d == topology.Start || ss == nil || ss.Status != schemas.StepSucceeded {
			continue
		}
		if g == nil {
			g = t.mustGraphOf(inst)
		}
		steps[d] = jsonValue(t.outputOf(inst, g.ByName[d]))
	}
	return map[string]any{"input": input, "steps": steps}
}

// jsonValue decodes an object for expressions: whole numbers become int,
// so that %, integer division and indexing work on them; other numbers
// float64. Anything unreadable is the empty object.
func jsonValue(raw json.RawMessage) any {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if len(raw) == 0 || dec.Decode(&v) != nil {
		return map[string]any{}
	}
	return numbers(v)
}

func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 0); err == nil {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

// runExpr runs a compiled expression within its memory budget.
func (t *transition) runExpr(e *topology.Expr, env map[string]any) (any, error) {
	t.exprs.vm.MemoryBudget = topology.ExprMemoryBudget
	return t.exprs.vm.Run(e.Program, env)
}

// failStepExpr fails step of inst (mutable) because e could not be
// evaluated, and with it the request.
func (t *transition) failStepExpr(inst *schemas.Record, step *topology.Step, e *topology.Expr, err error) {
	attempt := 0
	if step.Task == nil {
		attempt = 1
		if prev := inst.Steps[step.Name]; prev != nil {
			attempt = prev.Attempt + 1
		}
	}
	msg := exprFailure(e, err)
	inst.Steps[step.Name] = &schemas.StepState{Status: schemas.StepFailed, Attempt: attempt, Started: t.now, Ended: t.now, Error: msg}
	t.failRequest(inst.Request, &schemas.Failure{Step: statekey.StepPath(inst.Path, step.Name), Attempt: attempt, Message: msg})
}

func exprFailure(e *topology.Expr, err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		// Its Error() adds a multi-line snippet; the source is quoted.
		return fmt.Sprintf("%s %q: %s (column %d)", e.Path, e.Source, fe.Message, fe.Column+1)
	}
	return fmt.Sprintf("%s %q: %v", e.Path, e.Source, err)
}

// workflowOutput evaluates g's output: mapping over the root's input and
// every succeeded top-level step.
func (t *transition) workflowOutput(inst *schemas.Record, g *topology.Graph) (json.RawMessage, error) {
	names := make([]string, 0, len(g.Steps))
	for _, s := range g.Steps {
		names = append(names, s.Name)
	}
	out, e, err := t.evalMappings(g.Output, t.exprEnv(inst, names))
	if err != nil {
		return nil, fmt.Errorf("%s", exprFailure(e, err))
	}
	return out, nil
}

func describeValue(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%T", v)
	}
	return describeJSON(b)
}
