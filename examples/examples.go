// Package examples lists the runnable examples of Stepwise, so that
// `stepwise dev --examples` and `stepwise workers --example NAME` can load
// their workflows and run their workers without knowing each one.
//
// # The examples
//
//   - word-counts (package wordcounts in word-counts/): the example of the
//     original workflow manager, book-word-counts, in its original format.
//   - idp (package idp in idp/): document processing with nested fan-out.
//
// Each example directory holds its workflows.yaml (embedded in its package),
// its Go workers and their tests; e2e_test.go here runs both through a
// processor and workers on an in-process broker.
package examples

import (
	"fmt"

	wordcounts "github.com/stepwise-run/stepwise/examples/word-counts"

	"github.com/stepwise-run/stepwise/examples/idp"
	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/worker"
)

// Example is one runnable example.
type Example struct {
	Name        string // as given to --example
	Workflow    string // the workflow it defines
	Summary     string
	YAML        []byte // its workflows.yaml
	Definitions func() (*topology.Set, error)
	// Register adds the example's handlers to w, one per queue, with
	// opts on each.
	Register func(w *worker.Worker, opts ...worker.HandleOption)
}

// All returns every example, in a fixed order.
func All() []Example {
	return []Example{
		{
			Name: "word-counts", Workflow: wordcounts.WorkflowName,
			Summary:     "count the words of a book, chapters in parallel (the original manager's example)",
			YAML:        wordcounts.WorkflowsYAML,
			Definitions: wordcounts.Definitions,
			Register: func(w *worker.Worker, opts ...worker.HandleOption) {
				wordcounts.Register(w, wordcounts.WithHandleOptions(opts...))
			},
		},
		{
			Name: "idp", Workflow: idp.WorkflowName,
			Summary:     "document processing: documents, then pages, in nested fan-out",
			YAML:        idp.WorkflowsYAML,
			Definitions: idp.Definitions,
			Register: func(w *worker.Worker, opts ...worker.HandleOption) {
				idp.Register(w, idp.WithHandleOptions(opts...))
			},
		},
	}
}

// Names returns the names of every example.
func Names() []string {
	var out []string
	for _, e := range All() {
		out = append(out, e.Name)
	}
	return out
}

// Lookup returns the example called name.
func Lookup(name string) (Example, error) {
	for _, e := range All() {
		if e.Name == name {
			return e, nil
		}
	}
	return Example{}, fmt.Errorf("stepwise: no example %q; the examples are %v", name, Names())
}

// Definitions returns the workflows of every example in one set.
func Definitions() (*topology.Set, error) {
	var sets []*topology.Set
	for _, e := range All() {
		s, err := e.Definitions()
		if err != nil {
			return nil, fmt.Errorf("stepwise: example %s: %w", e.Name, err)
		}
		sets = append(sets, s)
	}
	return Merge(sets...)
}

// Register adds the handlers of every example to w.
func Register(w *worker.Worker, opts ...worker.HandleOption) {
	for _, e := range All() {
		e.Register(w, opts...)
	}
}

// Merge returns one set holding the workflows of sets, in order. A workflow
// name found in two sets is an error, as it is across files for
// topology.Load.
func Merge(sets ...*topology.Set) (*topology.Set, error) {
	out := &topology.Set{Workflows: map[string]*topology.Workflow{}}
	for _, s := range sets {
		if s == nil {
			continue
		}
		for _, name := range s.Order {
			w := s.Workflows[name]
			if prev, dup := out.Workflows[name]; dup {
				return nil, fmt.Errorf("stepwise: workflow %q is defined in %s and in %s", name, prev.File, w.File)
			}
			out.Workflows[name] = w
			out.Order = append(out.Order, name)
		}
	}
	if err := out.Validate(); err != nil {
		return nil, err
	}
	return out, nil
}
