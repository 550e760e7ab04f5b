package topology

import (
	"errors"
	"fmt"
	"slices"
)

// Validate checks the invariants of a compiled set, for sets that were not
// produced by Parse or Load (which always satisfy them) — built in code,
// or decoded from elsewhere. It checks that:
//   - Order lists every workflow of Workflows once, each under its Name;
//   - every graph has at least one step, names are unique and ByName
//     indexes exactly the steps;
//   - every step has dependencies, each Start or another step of its graph,
//     none End, none repeated; the graph is acyclic;
//   - Successors and Terminal are what Depends implies, in declaration
//     order;
//   - a step has either a Queue (dispatched), a Task (fan-out), or a Wait
//     or Sleep (never dispatched, no Queue), never two of them;
//     a dispatched or waiting step has a retry policy with MaxAttempts >= 1,
//     Initial > 0, Max > 0, Multiplier >= 1, and Timeout >= 0;
//   - every task has an ItemListKey and a graph; task nesting is finite.
//
// The error wraps ErrInvalid and lists every broken invariant.
func (s *Set) Validate() error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if len(s.Order) != len(s.Workflows) {
		fail("Order has %d names for %d workflows", len(s.Order), len(s.Workflows))
	}
	for i, name := range s.Order {
		w := s.Workflows[name]
		switch {
		case w == nil:
			fail("Order[%d]: no workflow %q", i, name)
			continue
		case slices.Index(s.Order, name) != i:
			fail("Order[%d]: %q listed twice", i, name)
			continue
		case w.Name != name:
			fail("workflow %q is named %q", name, w.Name)
		}
		if w.Graph == nil {
			fail("workflow %q: no graph", name)
			continue
		}
		checkGraph(w.Graph, "workflow "+name, map[*Task]bool{}, map[*Task]bool{}, fail)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w:\n%w", ErrInvalid, errors.Join(errs...))
}

// checkGraph checks one graph and, through its fan-out steps, the graphs of
// its tasks. active holds the tasks being checked further up, to detect
// nesting that never ends; checked holds the tasks already checked, so that
// a task shared by many steps is checked once, not once per path to it.
func checkGraph(g *Graph, where string, active, checked map[*Task]bool, fail func(string, ...any)) {
	if len(g.Steps) == 0 {
		fail("%s: no steps", where)
	}
	if len(g.ByName) != len(g.Steps) {
		fail("%s: ByName has %d entries for %d steps", where, len(g.ByName), len(g.Steps))
	}
	// The successors Depends implies, in declaration order.
	wantSucc := map[string][]*Step{}
	for _, st := range g.Steps {
		for _, d := range st.Depends {
			wantSucc[d] = append(wantSucc[d], st)
		}
	}
	var wantTerminal []*Step
	for _, st := range g.Steps {
		at := where + ": step " + st.Name
		if g.ByName[st.Name] != st {
			fail("%s: not indexed by ByName (or its name is used twice)", at)
		}
		if len(st.Depends) == 0 {
			fail("%s: no dependencies (Start when none)", at)
		}
		for i, d := range st.Depends {
			switch {
			case d == End:
				fail("%s: depends on %s", at, End)
			case d == st.Name:
				fail("%s: depends on itself", at)
			case slices.Index(st.Depends, d) != i:
				fail("%s: depends on %q twice", at, d)
			case d != Start && g.ByName[d] == nil:
				fail("%s: depends on unknown step %q", at, d)
			}
		}
		if !slices.Equal(st.Successors, wantSucc[st.Name]) {
			fail("%s: Successors do not match the steps depending on it", at)
		}
		if len(wantSucc[st.Name]) == 0 {
			wantTerminal = append(wantTerminal, st)
		}
		timer := st.Wait != nil || st.Sleep > 0 // never dispatched: no queue
		switch {
		case st.Task != nil && st.Queue != "":
			fail("%s: both a queue and a task", at)
		case st.Task != nil && timer:
			fail("%s: a fan-out that waits or sleeps", at)
		case timer && st.Queue != "":
			fail("%s: a wait or sleep step with a queue", at)
		case st.Task == nil && st.Queue == "" && !timer:
			fail("%s: neither a queue nor a task", at)
		case st.Task == nil:
			r := st.Retry
			if st.Sleep == 0 && (r.MaxAttempts < 1 || r.Initial <= 0 || r.Max <= 0 || !(r.Multiplier >= 1)) {
				fail("%s: invalid retry policy %+v", at, r)
			}
			if st.Timeout < 0 {
				fail("%s: negative timeout", at)
			}
		case active[st.Task]:
			fail("%s: task %q runs itself", at, st.Task.Name)
		case st.Task.ItemListKey == "":
			fail("%s: task %q has no ItemListKey", at, st.Task.Name)
		case st.Task.Graph == nil:
			fail("%s: task %q has no graph", at, st.Task.Name)
		case checked[st.Task]:
		default:
			active[st.Task], checked[st.Task] = true, true
			checkGraph(st.Task.Graph, at+": task "+st.Task.Name, active, checked, fail)
			delete(active, st.Task)
		}
	}
	if !slices.Equal(g.Terminal, wantTerminal) {
		fail("%s: Terminal is not the steps nothing depends on", where)
	}
	if cyc := findCycles(successorIndexes(g)); len(cyc) > 0 {
		fail("%s: dependency cycle through %q", where, g.Steps[cyc[0][0]].Name)
	}
}

// successorIndexes returns the graph's edges (dependency to dependent) as
// step indexes, from Depends alone.
func successorIndexes(g *Graph) [][]int {
	index := make(map[string]int, len(g.Steps))
	for i, st := range g.Steps {
		index[st.Name] = i
	}
	succ := make([][]int, len(g.Steps))
	for i, st := range g.Steps {
		for _, d := range st.Depends {
			if j, ok := index[d]; ok {
				succ[j] = append(succ[j], i)
			}
		}
	}
	return succ
}

// UnusedTasks returns, sorted, the tasks of the workflow that no step runs,
// directly or through another task. They are allowed (the original format
// allowed them) but are usually a mistake worth a warning.
func (w *Workflow) UnusedTasks() []string {
	used := map[*Task]bool{}
	var walk func(g *Graph)
	walk = func(g *Graph) {
		for _, st := range g.Steps {
			if st.Task != nil && !used[st.Task] {
				used[st.Task] = true
				walk(st.Task.Graph)
			}
		}
	}
	walk(w.Graph)
	var out []string
	for name, t := range w.Tasks {
		if !used[t] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
