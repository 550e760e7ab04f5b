package topology

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// FuzzParse checks that Parse never panics, that a failure is always a
// non-empty, position-sorted ValidationErrors, and that a success always
// yields a set whose invariants hold, whose expressions (when:, input:,
// output:) are all compiled, and that can be drawn. The seed corpus
// is in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse("fuzz.yaml", data)
		if err != nil {
			var ve ValidationErrors
			if !errors.As(err, &ve) || len(ve) == 0 {
				t.Fatalf("error %T %v is not a non-empty ValidationErrors", err, err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatal("error does not match ErrInvalid")
			}
			sorted := slices.IsSortedFunc(ve, func(a, b *FieldError) int {
				if a.Line != b.Line {
					return a.Line - b.Line
				}
				return a.Column - b.Column
			})
			if !sorted {
				t.Fatalf("problems not sorted by position:\n%v", err)
			}
			for _, e := range ve {
				if e.File != "fuzz.yaml" || e.Msg == "" {
					t.Fatalf("malformed problem %+v", e)
				}
			}
			return
		}
		if len(set.Order) == 0 {
			t.Fatal("success with no workflows")
		}
		if err := set.Validate(); err != nil {
			t.Fatalf("compiled set breaks its invariants: %v\ninput:\n%s", err, data)
		}
		for _, name := range set.Order {
			w := set.Workflows[name]
			if !acyclic(w.Graph, map[*Task]bool{}) {
				t.Fatalf("workflow %q has a cycle", name)
			}
			checkCompiledExprs(t, w)
		}
		var buf bytes.Buffer
		if err := WriteDot(&buf, set.Workflows[set.Order[0]]); err != nil && !errors.Is(err, ErrTooLarge) {
			t.Fatal(err)
		}
		if err := WriteMermaid(&buf, set.Workflows[set.Order[0]]); err != nil && !errors.Is(err, ErrTooLarge) {
			t.Fatal(err)
		}
	})
}

// acyclic checks a graph and its tasks' graphs (each once) by Kahn's
// algorithm, a method independent of the one the validator uses.
func acyclic(g *Graph, seen map[*Task]bool) bool {
	indegree := map[*Step]int{}
	var ready []*Step
	for _, st := range g.Steps {
		n := 0
		for _, d := range st.Depends {
			if d != Start {
				n++
			}
		}
		indegree[st] = n
		if n == 0 {
			ready = append(ready, st)
		}
		if st.Task != nil && !seen[st.Task] {
			seen[st.Task] = true
			if !acyclic(st.Task.Graph, seen) {
				return false
			}
		}
	}
	done := 0
	for len(ready) > 0 {
		st := ready[0]
		ready = ready[1:]
		done++
		for _, s := range st.Successors {
			indegree[s]--
			if indegree[s] == 0 {
				ready = append(ready, s)
			}
		}
	}
	return done == len(g.Steps)
}

// checkCompiledExprs fails unless every expression of w was compiled at
// load, with its source and path.
func checkCompiledExprs(t *testing.T, w *Workflow) {
	t.Helper()
	check := func(e *Expr) {
		if e == nil || e.Program == nil || e.Path == "" {
			t.Fatalf("workflow %q: expression %+v not compiled", w.Name, e)
		}
	}
	graphs := []*Graph{w.Graph}
	for _, task := range w.Tasks {
		graphs = append(graphs, task.Graph)
	}
	for _, g := range graphs {
		for _, m := range g.Output {
			check(m.Expr)
		}
		for _, s := range g.Steps {
			if s.When != nil {
				check(s.When)
			}
			for _, m := range s.Input {
				check(m.Expr)
			}
		}
	}
}
