package topology

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Wait is what a wait step waits for: a signal of that name sent to its
// request (`stepwise signal`, POST /api/v1/requests/{id}/signals/{name},
// or a signal message on the requests topic). The step completes with the
// signal's data as its output. A signal that arrives before the step
// waits is kept on the request and taken when it starts waiting.
type Wait struct {
	Signal string
	// Timeout bounds one attempt of waiting; 0: wait until the signal
	// comes, or the request is cancelled or passes its deadline.
	Timeout time.Duration
	// OnTimeout, when non-nil, is the output (a JSON object) the step
	// succeeds with when Timeout passes without the signal. nil: the
	// timeout fails the attempt, and the step's retry policy applies (a
	// wait step is tried once unless it sets retry itself).
	OnTimeout json.RawMessage
}

func init() {
	Keys["wait"] = []string{"signal", "timeout", "onTimeout"}
	Keys["onTimeout"] = []string{"output"}
}

// waitSpec is a step's wait block as written.
type waitSpec struct {
	bad       bool   // not a mapping (reported)
	path      string // "workflows[0].steps[2].wait"
	at        pos
	signal    str
	timeout   duration
	onTimeout *onTimeoutSpec
}

type onTimeoutSpec struct {
	path   string // "...wait.onTimeout"
	at     pos
	output json.RawMessage // nil: not written (the empty object)
}

func (l *loader) wait(n *yaml.Node, path string) *waitSpec {
	w := &waitSpec{path: path, at: at(n)}
	w.signal.at = at(n)
	fields, ok := l.fields(n, path, Keys["wait"]...)
	w.bad = !ok
	for _, f := range fields {
		p := path + "." + f.name
		switch f.name {
		case "signal":
			w.signal = l.str(f.val, p)
		case "timeout":
			w.timeout = l.duration(f.val, p)
		case "onTimeout":
			w.onTimeout = l.onTimeout(f.val, p)
		}
	}
	return w
}

func (l *loader) onTimeout(n *yaml.Node, path string) *onTimeoutSpec {
	o := &onTimeoutSpec{path: path, at: at(n)}
	fields, _ := l.fields(n, path, Keys["onTimeout"]...)
	for _, f := range fields {
		p := path + "." + f.name
		if f.name == "output" {
			o.output = l.object(f.val, p)
		}
	}
	return o
}

// object reads a mapping of plain data as a JSON object; nil (reported)
// when it is not one.
func (l *loader) object(n *yaml.Node, path string) json.RawMessage {
	r := l.resolve(n)
	if r == nil {
		return nil
	}
	if isNull(r) {
		return json.RawMessage(`{}`)
	}
	if r.Kind != yaml.MappingNode {
		l.add(at(r), path, "must be a mapping (the step's output, a JSON object), got %s", kindName(r))
		return nil
	}
	var v any
	if err := r.Decode(&v); err != nil {
		l.add(at(r), path, "unreadable output: %v", err)
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		l.add(at(r), path, "output must be plain JSON data (string keys, no binary values): %v", err)
		return nil
	}
	return b
}

// checkWait checks a wait step s (s.wait != nil). The rules:
//   - wait.signal is set and matches NamePattern (it is part of the
//     signal's URL);
//   - wait.timeout, when set, is positive;
//   - onTimeout needs wait.timeout (it says what happens when it passes);
//   - a wait step is not dispatched: it has no task, queue or timeout of
//     its own (the wait's timeout bounds it). retry is allowed: it
//     applies to a timeout without onTimeout.
func checkWait(s *stepSpec, l *errorList) {
	w := s.wait
	switch {
	case w.bad || w.signal.bad:
	case !w.signal.set || w.signal.val == "":
		l.add(w.signal.at, w.path+".signal", "missing signal name: the name a signal must carry to complete this step")
	case !NamePattern.MatchString(w.signal.val):
		l.add(w.signal.at, w.path+".signal", "invalid signal name %q: must be %s", w.signal.val, nameRule)
	}
	if w.timeout.set && w.timeout.val <= 0 {
		l.add(w.timeout.at, w.path+".timeout", "must be positive, got %s (leave it out to wait without a bound)", w.timeout.val)
	}
	if w.onTimeout != nil && !w.timeout.set {
		l.add(w.onTimeout.at, w.onTimeout.path, "onTimeout needs wait.timeout: without one the step waits without a bound")
	}
	if s.task.set {
		l.add(s.task.at, s.path+".task", "a step either waits for a signal (wait) or fans out (task), not both")
	}
	if s.queue.set || s.transport.set {
		l.add(s.queue.at, s.path+".queue", "a wait step has no queue: it is not dispatched, a signal completes it")
	}
	if s.timeout.set {
		l.add(s.timeout.at, s.path+".timeout", "a wait step is bounded by wait.timeout, not timeout")
	}
}

// waitRetry is the retry policy of a wait step that sets none: one
// attempt, so that a timeout without onTimeout fails the request rather
// than waiting the whole timeout again. The workflow's defaults do not
// apply (they are for dispatched steps).
var waitRetry = RetryPolicy{MaxAttempts: 1, Initial: DefaultRetry.Initial, Max: DefaultRetry.Max, Multiplier: DefaultRetry.Multiplier}

// compileWait fills the wait step st from s.
func compileWait(st *Step, s *stepSpec) {
	w := &Wait{Signal: s.wait.signal.val, Timeout: s.wait.timeout.val}
	if o := s.wait.onTimeout; o != nil {
		w.OnTimeout = o.output
		if w.OnTimeout == nil {
			w.OnTimeout = json.RawMessage(`{}`)
		}
	}
	st.Wait = w
	st.Retry = mergeRetry(waitRetry, s.retry)
	st.Timeout = w.Timeout
}

// WaitsFor reports whether some step of the workflow, in its graph or in
// any of its tasks, waits for signal name.
func (w *Workflow) WaitsFor(name string) bool {
	return len(w.WaitSteps(name)) > 0
}

// WaitSteps returns the steps of the workflow's graph and tasks that wait
// for signal name, top-level steps first, then tasks by name.
func (w *Workflow) WaitSteps(name string) []*Step {
	var out []*Step
	pick := func(g *Graph) {
		for _, st := range g.Steps {
			if st.Wait != nil && st.Wait.Signal == name {
				out = append(out, st)
			}
		}
	}
	pick(w.Graph)
	for _, t := range sortedTasks(w.Tasks) {
		pick(t.Graph)
	}
	return out
}

func sortedTasks(m map[string]*Task) []*Task {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b *Task) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// StepAt returns the step at node, a step path without fan-out indexes
// ("documents/pages/ocr", statekey.Node), or nil when there is none.
func (w *Workflow) StepAt(node string) *Step {
	g := w.Graph
	parts := strings.Split(node, "/")
	for i, name := range parts {
		st := g.ByName[name]
		if st == nil {
			return nil
		}
		if i == len(parts)-1 {
			return st
		}
		if st.Task == nil {
			return nil
		}
		g = st.Task.Graph
	}
	return nil
}
