package topology

import "strings"

// DefaultPrefix is prepended to every topic name unless configured otherwise.
const DefaultPrefix Prefix = "stepwise."

// Prefix is the namespace shared by all topics of one Stepwise installation.
// Each topic kind has exactly one function that builds its name; call sites
// never concatenate topic names themselves.
type Prefix string

// Requests is the topic clients write starts and cancels to (key: request id).
func (p Prefix) Requests() string { return string(p) + "requests" }

// Results is the topic workers write step results to, on the partition named
// by the task's reply-partition header (key: request id).
func (p Prefix) Results() string { return string(p) + "results" }

// State is the compacted table of request state, written by processors inside
// their transactions (key: request id, or request id plus child path).
func (p Prefix) State() string { return string(p) + "state" }

// Completions carries one event per finished request (key: request id).
func (p Prefix) Completions() string { return string(p) + "completions" }

// Definitions is the compacted table of workflow definitions
// (key: workflow name).
func (p Prefix) Definitions() string { return string(p) + "definitions" }

// Tasks is the topic the workers of one queue consume. A queue of a
// namespaced workflow (see Workflow.Namespace) is "<namespace>.<queue>".
func (p Prefix) Tasks(queue string) string { return string(p) + "tasks." + queue }

// WorkerGroup is the default consumer group of the workers of queue, in
// every SDK: "<prefix>workers.<queue>".
func (p Prefix) WorkerGroup(queue string) string { return string(p) + "workers." + queue }

// QueueOf returns the queue name of a task topic, or "" when topic is not a
// task topic of this prefix.
func (p Prefix) QueueOf(topic string) string {
	q, ok := strings.CutPrefix(topic, p.Tasks(""))
	if !ok {
		return ""
	}
	return q
}

// Shared lists the topics every installation has, whatever its workflows.
func (p Prefix) Shared() []TopicSpec {
	return []TopicSpec{
		{Name: p.Requests(), Compacted: false},
		{Name: p.Results(), Compacted: false},
		{Name: p.State(), Compacted: true},
		{Name: p.Completions(), Compacted: false},
		{Name: p.Definitions(), Compacted: true},
	}
}

// TopicSpec is one topic of the plan.
type TopicSpec struct {
	Name      string
	Compacted bool // cleanup.policy=compact, else delete
}
