package topology

import (
	"cmp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Failure handling keys of a definition (docs/yaml-reference.md).

// boolField is a boolean field.
type boolField struct {
	val bool
	at  pos
	set bool
}

// boolean reads a boolean: true or false, as strconv.ParseBool spells them.
func (l *loader) boolean(n *yaml.Node, path string) boolField {
	v := l.scalar(n, path)
	if v == nil {
		return boolField{}
	}
	b, err := strconv.ParseBool(v.Value)
	if err != nil {
		l.add(at(v), path, "must be true or false, got %q", v.Value)
		return boolField{}
	}
	return boolField{val: b, at: at(v), set: true}
}

// validateFailureKeys checks the failure handling keys of one step: a
// fan-out step has no continueOnFailure (its children fail the request).
func validateFailureKeys(s *stepSpec, l *errorList) {
	validateTolerate(s, l)
	if s.continueOnFailure.set && s.task.set {
		l.add(s.continueOnFailure.at, s.path+".continueOnFailure", "a fan-out step (task: %s) is not dispatched: set continueOnFailure on its task's steps", s.task.val)
	}
}

// Tolerance is how many of a fan-out's children may fail without failing
// the request: Count children, or Percent of them (rounded down). The join
// then runs over the children that succeeded and receives the failed ones
// under FailedKey(ItemListKey).
type Tolerance struct {
	Count   int     // used when Percent is 0
	Percent float64 // 0 < Percent <= 100
}

// Bound is the number of failed children tolerated among children.
func (t Tolerance) Bound(children int) int {
	if t.Percent > 0 {
		return int(t.Percent * float64(children) / 100)
	}
	return t.Count
}

// FailedKey is the key of the join's input that lists the failed children
// of a fan-out over listKey that tolerates failures: "pages" gives
// "pagesFailed".
func FailedKey(listKey string) string { return listKey + "Failed" }

type toleranceSpec struct {
	path     string
	at       pos
	failures str
}

func (l *loader) tolerate(n *yaml.Node, path string) *toleranceSpec {
	t := &toleranceSpec{path: path, at: at(n)}
	t.failures.at = at(n)
	fields, _ := l.fields(n, path, Keys["tolerate"]...)
	for _, f := range fields {
		if f.name == "failures" {
			t.failures = l.str(f.val, path+".failures")
		}
	}
	return t
}

// parseTolerance reads "5%" or "3".
func parseTolerance(s string) (Tolerance, bool) {
	if num, ok := strings.CutSuffix(s, "%"); ok {
		p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || !(p > 0 && p <= 100) {
			return Tolerance{}, false
		}
		return Tolerance{Percent: p}, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return Tolerance{}, false
	}
	return Tolerance{Count: n}, true
}

// validateTolerate checks a step's tolerate block: on fan-out steps only,
// failures a whole number >= 0 or a percentage in (0%, 100%].
func validateTolerate(s *stepSpec, l *errorList) {
	t := s.tolerate
	if t == nil {
		return
	}
	if !s.task.set {
		l.add(t.at, t.path, "only a fan-out step (task:) tolerates failures: of its children")
		return
	}
	if !t.failures.set {
		if !t.failures.bad {
			l.add(t.failures.at, t.path+".failures", "missing failures: a count (3) or a percentage of the children (5%%)")
		}
		return
	}
	if _, ok := parseTolerance(t.failures.val); !ok {
		l.add(t.failures.at, t.path+".failures", "must be a whole number >= 0 or a percentage above 0%% and at most 100%%, got %q", t.failures.val)
	}
}

func compileTolerance(t *toleranceSpec) *Tolerance {
	if t == nil || !t.failures.set {
		return nil
	}
	tol, ok := parseTolerance(t.failures.val)
	if !ok {
		return nil
	}
	return &tol
}

// OnFailureStep is the step name of a workflow's failure handler in a
// request's state: not a valid step name, so never one of the graph's.
const OnFailureStep = "__onFailure__"

// validateOnFailure checks a workflow's onFailure: a queue name.
func validateOnFailure(w *workflowSpec, l *errorList) {
	if w.onFailure.set && !NamePattern.MatchString(w.onFailure.val) {
		l.add(w.onFailure.at, w.path+".onFailure", "invalid queue name %q: must be %s", w.onFailure.val, nameRule)
	}
}

// onFailureStep compiles a workflow's handler: a plain step on its queue,
// with the workflow's default retry and timeout.
func (c *compiler) onFailureStep(w *workflowSpec) *Step {
	if !w.onFailure.set {
		return nil
	}
	return &Step{Name: OnFailureStep, Queue: qualifyQueue(c.namespace, w.onFailure.val),
		Transport: cmp.Or(c.transports[w.onFailure.val], TransportKafka), Retry: c.retry, Timeout: c.timeout}
}
