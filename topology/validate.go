package topology

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// NamePattern is what workflow, step, task and queue names (and vhost
// names without their slash) must match: they become parts of Kafka topic
// names, state keys and step paths, so they are kept to letters, digits,
// '_' and '-', start with a letter, and are at most 100 characters long.
var NamePattern = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]{0,99}$`)

const nameRule = "a letter, then at most 99 letters, digits, '_' or '-'"

// validate checks the meaning of one loaded file and reports every problem
// it finds to l. The rules, in the order they are checked:
//
// File:
//   - the file has at least one workflow.
//
// Workflows:
//   - a workflow has a name, matching NamePattern;
//   - no two workflows of the file compile to the same name (a workflow
//     listed under vhosts is named "<vhost>/<name>" per vhost, so the same
//     name under different vhosts is allowed);
//   - each vhost starts with "/" and the rest is empty (the default vhost)
//     or matches NamePattern; no vhost is listed twice;
//   - a workflow has at least one step;
//   - retention, when set, is positive.
//
// Steps (of the workflow and of each task; names are scoped to their
// graph):
//   - a step has a name matching NamePattern, which is not __start__ or
//     __end__ and not used by another step of the same graph;
//   - each dependency names a step of the same graph or __start__ (steps
//     may be declared in any order); never __end__, never the step itself,
//     never twice in one depends list;
//   - the dependencies form no cycle (reported once per cycle as
//     "a -> b -> a", arrows pointing from a step to the one that depends on
//     it);
//   - a queue matches NamePattern; its transport, when written
//     ({name: ocr, transport: amqp}), is "kafka" or "amqp";
//   - a queue has one transport: steps of the file naming the same queue
//     do not mark it with different transports (a step that writes none
//     takes the queue's);
//   - a task names a task of the same workflow; such a fan-out step has no
//     queue, retry or timeout of its own (it is never dispatched: its
//     task's steps are);
//   - retry: maxAttempts >= 1, initial > 0, max > 0, multiplier >= 1;
//     timeout > 0. The same holds for the workflow's defaults.
//   - a wait step (wait:) follows the rules listed on checkWait, a sleep
//     step (sleep:) those on checkSleep, heartbeatTimeout those on
//     checkHeartbeat; a workflow's deadline, when set, is positive.
//
// Tasks:
//   - a task has a name matching NamePattern, unique in the workflow;
//   - a task has a non-empty itemListKey;
//   - a task has at least one step;
//   - tasks do not reference each other in a cycle through their steps
//     (task a's step runs task b whose step runs task a), reported as
//     "a -> b -> a".
//
// A task that no step uses is accepted (see Workflow.UnusedTasks).
// Structural problems (unknown or repeated fields, wrong kinds, bad
// durations and numbers, YAML syntax) are reported by the loader before.
func validate(f *fileSpec, l *errorList) {
	if len(f.workflows) == 0 {
		if f.unreadable {
			return // the loader said why
		}
		l.add(f.workflowsAt, "workflows", "no workflows defined")
		return
	}
	seen := map[string]string{} // compiled name -> path of its first definition
	for _, w := range f.workflows {
		if w.bad {
			continue
		}
		validateWorkflow(w, l)
		for _, name := range w.compiledNames() {
			if prev, dup := seen[name]; dup {
				if prev == w.path {
					continue // a repeated vhost, reported as such
				}
				l.add(w.name.at, w.path+".name", "duplicate workflow %q (also %s)", name, prev)
				continue
			}
			seen[name] = w.path
		}
	}
	checkTransports(f, l)
}

// Transports a queue can be served over (see Step.Transport).
const (
	TransportKafka = "kafka" // workers consume the queue's task topic (the default)
	TransportAMQP  = "amqp"  // `stepwise bridge amqp` relays it to a RabbitMQ queue of the same name
)

// checkTransports checks each transport written and that every queue of
// the file has one transport.
func checkTransports(f *fileSpec, l *errorList) {
	first := map[string]*stepSpec{} // queue -> the step that first set its transport
	forEachStep(f, func(s *stepSpec) {
		t := s.transport
		if !t.set {
			return
		}
		if t.val != TransportKafka && t.val != TransportAMQP {
			l.add(t.at, s.path+".queue.transport", "unknown transport %q: must be %q or %q", t.val, TransportKafka, TransportAMQP)
			return
		}
		q := s.queueName()
		prev, ok := first[q]
		if !ok {
			first[q] = s
			return
		}
		if prev.transport.val != t.val {
			l.add(t.at, s.path+".queue.transport", "queue %q is served over %s at %s:%d:%d (%s); a queue has one transport",
				q, prev.transport.val, f.file, prev.transport.at.line, prev.transport.at.col, prev.path+".queue.transport")
		}
	})
}

// forEachStep calls fn for every step of the file, workflows' and tasks'.
func forEachStep(f *fileSpec, fn func(*stepSpec)) {
	for _, w := range f.workflows {
		if w.bad {
			continue
		}
		for _, s := range w.steps {
			if !s.bad {
				fn(s)
			}
		}
		for _, t := range w.tasks {
			if t.bad {
				continue
			}
			for _, s := range t.steps {
				if !s.bad {
					fn(s)
				}
			}
		}
	}
}

// queueName is the queue the step is dispatched to, before any namespace:
// its queue, or its own name.
func (s *stepSpec) queueName() string {
	if s.queue.set {
		return s.queue.val
	}
	return s.name.val
}

// compiledNames returns the names the workflow is started by: its name,
// or "<namespace>/<name>" once per vhost. Invalid vhosts are skipped.
func (w *workflowSpec) compiledNames() []string {
	if !w.name.set || w.name.val == "" {
		return nil
	}
	if len(w.vhosts) == 0 {
		return []string{w.name.val}
	}
	var out []string
	for _, v := range w.vhosts {
		if ns, ok := namespaceOf(v.val); ok {
			out = append(out, qualify(ns, w.name.val))
		}
	}
	return out
}

// namespaceOf returns the namespace of a vhost ("/x" -> "x", "/" -> "").
func namespaceOf(vhost string) (string, bool) {
	ns, ok := strings.CutPrefix(vhost, "/")
	if !ok || (ns != "" && !NamePattern.MatchString(ns)) {
		return "", false
	}
	return ns, true
}

func qualify(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

func validateWorkflow(w *workflowSpec, l *errorList) {
	checkName(w.name, w.path, "workflow", l)

	vhosts := map[string]bool{}
	for _, v := range w.vhosts {
		p := w.path + ".vhosts"
		if !strings.HasPrefix(v.val, "/") {
			l.add(v.at, p, "vhost %q must start with \"/\", e.g. \"/%s\"", v.val, v.val)
		} else if _, ok := namespaceOf(v.val); !ok {
			l.add(v.at, p, "invalid vhost %q: after the \"/\" it must be %s", v.val, nameRule)
		}
		if vhosts[v.val] {
			l.add(v.at, p, "vhost %q listed twice", v.val)
		}
		vhosts[v.val] = true
	}

	checkDeadline(w, l)
	if w.retention.set && w.retention.val <= 0 {
		l.add(w.retention.at, w.path+".retention", "must be positive, got %s (leave it out for the processors' default)", w.retention.val)
	}
	if d := w.defaults; d != nil {
		checkRetry(d.retry, l)
		checkTimeout(d.timeout, d.path+".timeout", l)
	}

	tasks := map[string]*taskSpec{}
	for _, t := range w.tasks {
		if t.bad {
			continue
		}
		checkName(t.name, t.path, "task", l)
		if t.name.set && t.name.val != "" {
			if prev, dup := tasks[t.name.val]; dup {
				l.add(t.name.at, t.path+".name", "duplicate task %q (also %s)", t.name.val, prev.path)
			} else {
				tasks[t.name.val] = t
			}
		}
		if (!t.itemListKey.set || t.itemListKey.val == "") && !t.itemListKey.bad {
			l.add(t.itemListKey.at, t.path+".itemListKey",
				"missing itemListKey: the key of the list, in the fan-out step's input, whose elements each start one run of the task")
		}
		if len(t.steps) == 0 {
			l.add(t.stepsAt, t.path+".steps", "no steps: a task needs at least one")
		}
		validateGraph(t.steps, w, l)
	}

	if len(w.steps) == 0 {
		l.add(w.stepsAt, w.path+".steps", "no steps: a workflow needs at least one")
	}
	validateGraph(w.steps, w, l)
	checkTaskCycles(w, tasks, l)
	validateExprs(w, l)
	validateOnFailure(w, l)
}

// checkName reports a missing or malformed name of kind ("workflow",
// "task", "step").
func checkName(name str, path, kind string, l *errorList) {
	p := path + ".name"
	switch {
	case name.bad:
		// not a single value: reported by the loader
	case !name.set:
		l.add(name.at, p, "missing %s name", kind)
	case name.val == "":
		l.add(name.at, p, "empty %s name", kind)
	case kind == "step" && (name.val == Start || name.val == End):
		l.add(name.at, p, "%q is reserved: it stands for the start or the end of the graph", name.val)
	case !NamePattern.MatchString(name.val):
		l.add(name.at, p, "invalid %s name %q: must be %s", kind, name.val, nameRule)
	}
}

// validateGraph checks the steps of one graph of w. Task references are
// resolved against every task of w, wherever it is declared.
func validateGraph(steps []*stepSpec, w *workflowSpec, l *errorList) {
	taskNames := make([]string, 0, len(w.tasks))
	for _, t := range w.tasks {
		if t.name.set {
			taskNames = append(taskNames, t.name.val)
		}
	}
	index := map[string]int{} // step name -> first declaration
	for i, s := range steps {
		if s.bad {
			continue
		}
		checkName(s.name, s.path, "step", l)
		if !s.name.set || s.name.val == "" || s.name.val == Start || s.name.val == End {
			continue
		}
		if prev, dup := index[s.name.val]; dup {
			l.add(s.name.at, s.path+".name", "duplicate step %q (also %s)", s.name.val, steps[prev].path)
			continue
		}
		index[s.name.val] = i
	}
	names := slices.Collect(maps.Keys(index))
	slices.Sort(names)

	for _, s := range steps {
		dp := s.path + ".depends"
		listed := map[string]bool{}
		for _, d := range s.depends {
			switch _, known := index[d.val]; {
			case d.val == End:
				l.add(d.at, dp, "%q cannot be a dependency: it runs after every step", End)
			case d.val == s.name.val:
				l.add(d.at, dp, "step %q depends on itself", d.val)
			case listed[d.val]:
				l.add(d.at, dp, "%q listed twice", d.val)
			case d.val == Start || known:
			default:
				msg := fmt.Sprintf("unknown step %q", d.val)
				if hint := suggest(d.val, names); hint != "" {
					msg += fmt.Sprintf("; did you mean %q?", hint)
				}
				l.add(d.at, dp, "%s", msg)
			}
			listed[d.val] = true
		}
		if s.queue.set && !NamePattern.MatchString(s.queue.val) {
			l.add(s.queue.at, s.path+".queue", "invalid queue name %q: must be %s", s.queue.val, nameRule)
		}
		if s.task.set {
			if !slices.Contains(taskNames, s.task.val) {
				msg := fmt.Sprintf("unknown task %q", s.task.val)
				if hint := suggest(s.task.val, taskNames); hint != "" {
					msg += fmt.Sprintf("; did you mean %q?", hint)
				} else if len(taskNames) == 0 {
					msg += " (the workflow has no tasks)"
				}
				l.add(s.task.at, s.path+".task", "%s", msg)
			}
			if s.queue.set || s.transport.set {
				l.add(s.queue.at, s.path+".queue", "a fan-out step (task: %s) has no queue: its task's steps are dispatched, each to its own queue", s.task.val)
			}
			if s.retry != nil {
				l.add(s.retry.at, s.retry.path, "a fan-out step (task: %s) is not dispatched: set retry on its task's steps", s.task.val)
			}
			if s.timeout.set {
				l.add(s.timeout.at, s.path+".timeout", "a fan-out step (task: %s) is not dispatched: set timeout on its task's steps", s.task.val)
			}
		} else {
			checkRetry(s.retry, l)
			checkTimeout(s.timeout, s.path+".timeout", l)
		}
		validateFailureKeys(s, l)
		if s.wait != nil {
			checkWait(s, l)
		}
		if s.sleep.set {
			checkSleep(s, l)
		}
		if s.heartbeat.set {
			checkHeartbeat(s, l)
		}
	}
	checkStepCycles(steps, index, l)
}

func checkRetry(r *retrySpec, l *errorList) {
	if r == nil {
		return
	}
	if r.maxAttempts.set && r.maxAttempts.val < 1 {
		l.add(r.maxAttempts.at, r.path+".maxAttempts", "must be at least 1 (the first attempt counts), got %d", r.maxAttempts.val)
	}
	if r.initial.set && r.initial.val <= 0 {
		l.add(r.initial.at, r.path+".initial", "must be positive, got %s", r.initial.val)
	}
	if r.max.set && r.max.val <= 0 {
		l.add(r.max.at, r.path+".max", "must be positive, got %s", r.max.val)
	}
	if r.multiplier.set && !(r.multiplier.val >= 1) {
		l.add(r.multiplier.at, r.path+".multiplier", "must be at least 1, got %g", r.multiplier.val)
	}
}

func checkTimeout(d duration, path string, l *errorList) {
	if d.set && d.val <= 0 {
		l.add(d.at, path, "must be positive, got %s (leave it out for no timeout)", d.val)
	}
}

// checkStepCycles reports each dependency cycle once. It walks from steps
// to the steps depending on them, in declaration order, so the report is
// deterministic; self-dependencies are reported elsewhere and skipped.
func checkStepCycles(steps []*stepSpec, index map[string]int, l *errorList) {
	succ := make([][]int, len(steps))
	for i, s := range steps {
		if idx, ok := index[s.name.val]; !ok || idx != i {
			continue // unnamed or duplicate: not a node
		}
		for _, d := range s.depends {
			if j, ok := index[d.val]; ok && j != i && !slices.Contains(succ[j], i) {
				succ[j] = append(succ[j], i)
			}
		}
	}
	for _, cyc := range findCycles(succ) {
		// cyc[0] is the earliest declared step of the cycle; it depends on
		// the last one, and that depends entry is where the cycle closes.
		first, last := steps[cyc[0]], steps[cyc[len(cyc)-1]]
		at := first.at
		for _, d := range first.depends {
			if d.val == last.name.val {
				at = d.at
				break
			}
		}
		names := make([]string, 0, len(cyc)+1)
		for _, i := range cyc {
			names = append(names, steps[i].name.val)
		}
		names = append(names, first.name.val)
		l.add(at, first.path+".depends", "dependency cycle: %s", strings.Join(names, " -> "))
	}
}

// checkTaskCycles reports tasks that run themselves through a chain of
// fan-out steps, which would nest without end.
func checkTaskCycles(w *workflowSpec, tasks map[string]*taskSpec, l *errorList) {
	order := make([]*taskSpec, 0, len(tasks))
	index := map[*taskSpec]int{}
	for _, t := range w.tasks {
		if tasks[t.name.val] == t {
			index[t] = len(order)
			order = append(order, t)
		}
	}
	succ := make([][]int, len(order))
	for i, t := range order {
		for _, s := range t.steps {
			if u, ok := tasks[s.task.val]; ok && s.task.set && !slices.Contains(succ[i], index[u]) {
				succ[i] = append(succ[i], index[u])
			}
		}
	}
	for _, cyc := range findCycles(succ) {
		// The last task of the cycle has a step running the first.
		first, last := order[cyc[0]], order[cyc[len(cyc)-1]]
		at, path := last.at, last.path
		for _, s := range last.steps {
			if s.task.set && s.task.val == first.name.val {
				at, path = s.task.at, s.path+".task"
				break
			}
		}
		names := make([]string, 0, len(cyc)+1)
		for _, i := range cyc {
			names = append(names, order[i].name.val)
		}
		names = append(names, first.name.val)
		l.add(at, path, "task reference cycle: %s", strings.Join(names, " -> "))
	}
}

// findCycles returns one cycle per group of nodes that reach each other
// (each strongly connected component with an edge inside it), as node
// indexes starting from the component's lowest index and following edges.
func findCycles(succ [][]int) [][]int {
	comp := components(succ)
	var out [][]int
	done := map[int]bool{}
	for start := range succ {
		c := comp[start]
		if done[c] {
			continue
		}
		// A cycle through start inside its component, by breadth-first
		// search back to start (shortest cycle, so messages stay short).
		prev := map[int]int{}
		queue := []int{start}
		found := false
		for len(queue) > 0 && !found {
			u := queue[0]
			queue = queue[1:]
			for _, v := range succ[u] {
				if comp[v] != c {
					continue
				}
				if v == start {
					prev[start] = u
					found = true
					break
				}
				if _, ok := prev[v]; !ok {
					prev[v] = u
					queue = append(queue, v)
				}
			}
		}
		if !found {
			continue
		}
		done[c] = true
		var cyc []int
		for u := prev[start]; u != start; u = prev[u] {
			cyc = append(cyc, u)
		}
		cyc = append(cyc, start)
		slices.Reverse(cyc)
		out = append(out, cyc)
	}
	return out
}

// components labels each node with its strongly connected component
// (Tarjan's algorithm, iterative so that deep graphs cannot overflow the
// stack).
func components(succ [][]int) []int {
	n := len(succ)
	index := make([]int, n)
	low := make([]int, n)
	comp := make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
		comp[i] = -1
	}
	var stack []int
	next, ncomp := 0, 0
	type frame struct{ node, edge int }
	for root := range n {
		if index[root] >= 0 {
			continue
		}
		call := []frame{{root, 0}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			u := f.node
			if f.edge < len(succ[u]) {
				v := succ[u][f.edge]
				f.edge++
				switch {
				case index[v] < 0:
					index[v], low[v] = next, next
					next++
					stack = append(stack, v)
					onStack[v] = true
					call = append(call, frame{v, 0})
				case onStack[v]:
					low[u] = min(low[u], index[v])
				}
				continue
			}
			call = call[:len(call)-1]
			if len(call) > 0 {
				p := call[len(call)-1].node
				low[p] = min(low[p], low[u])
			}
			if low[u] == index[u] {
				for {
					v := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[v] = false
					comp[v] = ncomp
					if v == u {
						break
					}
				}
				ncomp++
			}
		}
	}
	return comp
}
