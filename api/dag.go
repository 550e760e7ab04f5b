package api

import (
	"github.com/stepwise-run/stepwise/statekey"
	"github.com/stepwise-run/stepwise/topology"
)

// Node kinds of a DAG document.
const (
	KindStart   = "start"   // __start__ of the workflow
	KindEnd     = "end"     // __end__ of the workflow
	KindStep    = "step"    // a step dispatched to a queue
	KindFanOut  = "fanout"  // a fan-out step: a group holding its task's steps
	KindForEach = "foreach" // where a fan-out starts its children
	KindCollect = "collect" // where a fan-out gathers its children
)

// DAG is a workflow drawn as nodes and edges. Fan-out steps are groups
// (Parent of the nodes inside them) with a "for each" node where edges
// come in and a "collect" node where they leave, as `stepwise graph` draws
// them. A node's ID is its step path without indexes ("documents/pages/ocr"),
// the key of the step's progress in a request's status.
type DAG struct {
	Nodes     []DAGNode `json:"nodes"`
	Edges     []DAGEdge `json:"edges"`
	Truncated bool      `json:"truncated,omitempty"` // over topology.MaxDrawnNodes
}

// DAGNode is one node or group of a DAG.
type DAGNode struct {
	ID     string `json:"id"`
	Label  string `json:"label"`
	Kind   string `json:"kind"`
	Parent string `json:"parent,omitempty"` // the fan-out group holding it
	// Step is the node whose progress this one shows: its own ID for
	// steps and groups, the group's for foreach/collect, "" otherwise.
	Step        string `json:"step,omitempty"`
	Queue       string `json:"queue,omitempty"`
	Task        string `json:"task,omitempty"`
	ItemListKey string `json:"itemListKey,omitempty"`
	MaxAttempts int    `json:"maxAttempts,omitempty"`
	Timeout     string `json:"timeout,omitempty"`
	Signal      string `json:"signal,omitempty"` // a wait step: the signal it waits for
}

// DAGEdge is a dependency: To runs after From.
type DAGEdge struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// WorkflowDAG draws w.
func WorkflowDAG(w *topology.Workflow) DAG {
	var d DAG
	d.Nodes = append(d.Nodes,
		DAGNode{ID: topology.Start, Label: topology.Start, Kind: KindStart},
		DAGNode{ID: topology.End, Label: topology.End, Kind: KindEnd})
	d.graph(w.Graph, "", topology.Start, topology.End)
	return d
}

// graph adds g's steps under the group parent ("" for the top level), with
// from and to standing for the graph's start and end.
func (d *DAG) graph(g *topology.Graph, parent, start, end string) {
	in := make(map[string]string, len(g.Steps))
	out := make(map[string]string, len(g.Steps))
	for _, st := range g.Steps {
		if len(d.Nodes) > topology.MaxDrawnNodes {
			d.Truncated = true
			return
		}
		id := statekey.StepPath(parent, st.Name)
		n := DAGNode{ID: id, Label: st.Name, Kind: KindStep, Parent: parent, Step: id,
			Queue: st.Queue, MaxAttempts: st.Retry.MaxAttempts}
		if st.Timeout > 0 {
			n.Timeout = st.Timeout.String()
		}
		if st.Wait != nil {
			n.Signal = st.Wait.Signal
		}
		if st.Task == nil {
			d.Nodes = append(d.Nodes, n)
			in[st.Name], out[st.Name] = id, id
			continue
		}
		t := st.Task
		n.Kind, n.Queue, n.MaxAttempts = KindFanOut, "", 0
		n.Task, n.ItemListKey = t.Name, t.ItemListKey
		n.Label = st.Name + " (task " + t.Name + ")"
		each := DAGNode{ID: id + "#each", Label: "for each " + t.ItemKey + " in " + t.ItemListKey, Kind: KindForEach, Parent: id, Step: id}
		collect := DAGNode{ID: id + "#collect", Label: "collect " + t.ItemListKey, Kind: KindCollect, Parent: id, Step: id}
		d.Nodes = append(d.Nodes, n, each, collect)
		in[st.Name], out[st.Name] = each.ID, collect.ID
		d.graph(t.Graph, id, each.ID, collect.ID)
	}
	for _, st := range g.Steps {
		for _, dep := range st.Depends {
			from := start
			if dep != topology.Start {
				from = out[dep]
			}
			if from != "" && in[st.Name] != "" {
				d.Edges = append(d.Edges, DAGEdge{From: from, To: in[st.Name]})
			}
		}
	}
	for _, st := range g.Terminal {
		if out[st.Name] != "" {
			d.Edges = append(d.Edges, DAGEdge{From: out[st.Name], To: end})
		}
	}
}
