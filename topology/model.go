package topology

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Pseudo-step names of the original format. __start__'s output is the
// request input; __end__'s input (the merge of the terminal steps' outputs)
// is the graph's output.
const (
	Start = "__start__"
	End   = "__end__"
)

// Set is the compiled content of one or more definition files: every
// workflow by the name clients start it with.
type Set struct {
	Workflows map[string]*Workflow
	Order     []string // workflow names in file order
}

// Workflow is one compiled, validated workflow.
//
// Invariants (established by Compile): every Graph is acyclic; every
// dependency names a step of the same graph or Start; every fan-out step's
// Task is non-nil and task nesting is finite.
type Workflow struct {
	// Name clients start it by. For a workflow listed under a vhost of the
	// original format this is "<namespace>/<name>".
	Name string
	// Namespace is the vhost of the original format without its leading
	// slash ("" when none). It prefixes the workflow's queues.
	Namespace string
	Graph     *Graph           // the top-level steps
	Tasks     map[string]*Task // fan-out tasks by name
	File      string           // where it was defined, for messages
	// Retention is how long a finished request of this workflow is
	// remembered (status, idempotent start, retry); 0: the processors'
	// default (stepwise run --retention).
	Retention time.Duration
	// Deadline bounds a whole run of a request (timers.go); 0: none.
	Deadline time.Duration
	// Source is a definition file holding this workflow's entry alone, in
	// a canonical form (keys sorted, no comments or anchors) that Parse
	// reads back to the same workflow. It is what `stepwise apply`
	// publishes and hashes. A workflow under several vhosts shares it.
	Source []byte
}

// Task is a sub-graph run once per element of a list found in its input.
type Task struct {
	Name        string
	ItemListKey string // key of the list in the fan-out step's input, e.g. "sections"
	ItemKey     string // key of the element in each child's input, e.g. "section"
	Graph       *Graph
}

// Graph is a DAG of steps. Steps are in declaration order, which is also the
// order used wherever a tie must be broken deterministically.
type Graph struct {
	Steps    []*Step
	ByName   map[string]*Step
	Terminal []*Step // the steps __end__ depends on, in declaration order
	// Output, set on a workflow's top-level graph only, replaces the
	// merge of the terminal steps' outputs as the request's output.
	Output []Mapping
	// OnFailure, set on a workflow's top-level graph only, is the step
	// run with the failure before a request fails (onFailure: <queue>);
	// it is not one of Steps.
	OnFailure *Step
}

// Step is one node of a Graph: either a task dispatched to a queue, or a
// fan-out over Task.
type Step struct {
	Name    string
	Depends []string // never empty: Start when the file gave none
	// Successors are the steps that list this one in Depends, in
	// declaration order.
	Successors []*Step
	Queue      string // resolved queue (namespace-prefixed); "" for a fan-out step
	Task       *Task  // non-nil for a fan-out step
	// Transport is how the queue's tasks reach workers: TransportKafka
	// (workers consume the task topic) or TransportAMQP (the AMQP bridge
	// relays them to RabbitMQ). Every step of a queue has the same one.
	// "" for a fan-out step.
	Transport string
	Retry     RetryPolicy
	Timeout   time.Duration // 0: no timeout
	// Wait is set for a wait step (wait.go): it is never dispatched, it
	// completes with the data of a signal. Queue and Transport are "".
	Wait *Wait
	// Sleep is set for a sleep step (timers.go): it is never dispatched,
	// it succeeds Sleep after it starts, passing its input on.
	Sleep time.Duration
	// HeartbeatTimeout fails an attempt whose worker sent no heartbeat
	// (nor result) for this long (heartbeat.go); 0: none.
	HeartbeatTimeout time.Duration
	// When, when set, decides whether the step runs: false skips it
	// (docs/expressions.md has the rule of skips). Input, when set,
	// replaces the merge of the dependencies' outputs as the step's
	// input: one key per mapping, in file order.
	When  *Expr
	Input []Mapping
	// ContinueOnFailure: when the step fails for good (its retries spent
	// or the error not retryable), the request goes on without its
	// output instead of failing. Plain steps only.
	ContinueOnFailure bool
	// Tolerate, on a fan-out step, is how many children may fail while
	// the join still runs (failure.go); nil: none.
	Tolerate *Tolerance
}

// RetryPolicy says how often a failed step is tried again and how long to
// wait in between. Attempt n (n >= 2) waits
// min(Initial * Multiplier^(n-2), Max).
type RetryPolicy struct {
	MaxAttempts int // total attempts including the first; >= 1
	Initial     time.Duration
	Max         time.Duration
	Multiplier  float64
}

// DefaultRetry applies when neither the step nor the workflow sets one.
var DefaultRetry = RetryPolicy{MaxAttempts: 3, Initial: time.Second, Max: 30 * time.Second, Multiplier: 2}

// Backoff returns the wait before attempt (the attempt about to start).
func (r RetryPolicy) Backoff(attempt int) time.Duration {
	d := float64(r.Initial)
	for i := 2; i < attempt; i++ {
		d *= r.Multiplier
		if d >= float64(r.Max) {
			return r.Max
		}
	}
	if time.Duration(d) > r.Max {
		return r.Max
	}
	return time.Duration(d)
}

// Singular returns the element key of a list key as the original manager
// does: one trailing "s" dropped, when the key is longer than one character.
func Singular(listKey string) string {
	if len(listKey) > 1 && strings.HasSuffix(listKey, "s") {
		return listKey[:len(listKey)-1]
	}
	return listKey
}

// Lookup returns the workflow of that name, or nil.
func (s *Set) Lookup(name string) *Workflow {
	if s == nil {
		return nil
	}
	return s.Workflows[name]
}

// Queues returns every queue used by the set, sorted and without repeats.
func (s *Set) Queues() []string { return s.queues(func(*Step) bool { return true }) }

// QueuesOver returns the queues of the set served over transport
// (TransportKafka or TransportAMQP), sorted and without repeats.
func (s *Set) QueuesOver(transport string) []string {
	return s.queues(func(st *Step) bool { return st.Transport == transport })
}

// queues returns the queues of the dispatched steps that keep says yes to.
func (s *Set) queues(keep func(*Step) bool) []string {
	seen := map[string]bool{}
	// Each task is walked once: tasks shared by several steps at several
	// nesting levels would otherwise be walked exponentially often.
	walked := map[*Task]bool{}
	var out []string
	var walk func(g *Graph)
	walk = func(g *Graph) {
		for _, st := range g.Steps {
			if st.Task != nil {
				if !walked[st.Task] {
					walked[st.Task] = true
					walk(st.Task.Graph)
				}
				continue
			}
			if st.Queue == "" {
				continue // not dispatched (wait)
			}
			if !seen[st.Queue] && keep(st) {
				seen[st.Queue] = true
				out = append(out, st.Queue)
			}
		}
		if st := g.OnFailure; st != nil && !seen[st.Queue] && keep(st) {
			seen[st.Queue] = true
			out = append(out, st.Queue)
		}
	}
	for _, name := range s.Order {
		walk(s.Workflows[name].Graph)
	}
	slices.Sort(out)
	return out
}

// Topics returns the topic plan of the set: the shared topics and one task
// topic per queue.
func (s *Set) Topics(p Prefix) []TopicSpec {
	out := p.Shared()
	for _, q := range s.Queues() {
		out = append(out, TopicSpec{Name: p.Tasks(q)})
	}
	return out
}

// RetryFrom returns step and every step of g that depends on it, directly
// or not: what a retry of a request from step runs again. A fan-out step
// among them is refused: its children would be started afresh under
// attempt numbers an earlier child may still answer.
func (g *Graph) RetryFrom(step string) (map[string]bool, error) {
	st := g.ByName[step]
	if st == nil {
		return nil, fmt.Errorf("no top-level step %q to retry from (steps: %s)", step, strings.Join(stepNames(g), ", "))
	}
	out := map[string]bool{}
	var walk func(s *Step) error
	walk = func(s *Step) error {
		if out[s.Name] {
			return nil
		}
		if s.Task != nil {
			return fmt.Errorf("retry from %q would run fan-out step %q again from the start; retry without a step to run only its children that did not succeed", step, s.Name)
		}
		out[s.Name] = true
		for _, n := range s.Successors {
			if err := walk(n); err != nil {
				return err
			}
		}
		return nil
	}
	return out, walk(st)
}

func stepNames(g *Graph) []string {
	out := make([]string, 0, len(g.Steps))
	for _, s := range g.Steps {
		out = append(out, s.Name)
	}
	return out
}
