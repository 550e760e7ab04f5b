package topology

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrTooLarge is returned by WriteDot and WriteMermaid when the drawing
// would have more than MaxDrawnNodes nodes: nested fan-outs are drawn once
// per fan-out step, so tasks sharing tasks can multiply. Draw one workflow
// (or a smaller one) instead.
var ErrTooLarge = errors.New("stepwise: graph too large to draw")

// MaxDrawnNodes bounds the size of a drawing.
const MaxDrawnNodes = 10000

// WriteDot draws workflows as one Graphviz digraph. Each fan-out step is a
// cluster holding its task's steps between a "for each" node and a
// "collect" node, nested fan-outs nested; __start__ and __end__ are drawn.
// With more than one workflow, each is a cluster of its own.
func WriteDot(w io.Writer, workflows ...*Workflow) error {
	d := newDrawing(workflows)
	if d.count > MaxDrawnNodes {
		return fmt.Errorf("%w: more than %d nodes", ErrTooLarge, MaxDrawnNodes)
	}
	b := bufio.NewWriter(w)
	name := "stepwise"
	if len(workflows) == 1 {
		name = workflows[0].Name
	}
	fmt.Fprintf(b, "digraph %s {\n", dotQuote(name))
	b.WriteString("  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\"];\n")
	var emit func(c *cluster, indent string)
	emit = func(c *cluster, indent string) {
		for _, n := range c.nodes {
			fmt.Fprintf(b, "%s%s [label=%s%s];\n", indent, n.id, dotQuote(n.label), dotShape[n.kind])
		}
		for _, sub := range c.subs {
			fmt.Fprintf(b, "%ssubgraph cluster_%s {\n", indent, sub.id)
			fmt.Fprintf(b, "%s  label=%s;\n%s  style=rounded;\n", indent, dotQuote(sub.label), indent)
			emit(sub, indent+"  ")
			fmt.Fprintf(b, "%s}\n", indent)
		}
	}
	emit(d.root, "  ")
	for _, e := range d.edges {
		fmt.Fprintf(b, "  %s -> %s;\n", e[0], e[1])
	}
	b.WriteString("}\n")
	return b.Flush()
}

// WriteMermaid draws workflows as one Mermaid flowchart, with the same
// layout as WriteDot (fan-out steps as subgraphs).
func WriteMermaid(w io.Writer, workflows ...*Workflow) error {
	d := newDrawing(workflows)
	if d.count > MaxDrawnNodes {
		return fmt.Errorf("%w: more than %d nodes", ErrTooLarge, MaxDrawnNodes)
	}
	b := bufio.NewWriter(w)
	b.WriteString("flowchart LR\n")
	var emit func(c *cluster, indent string)
	emit = func(c *cluster, indent string) {
		for _, n := range c.nodes {
			open, close := mermaidShape(n.kind)
			fmt.Fprintf(b, "%s%s%s%s%s\n", indent, n.id, open, mermaidQuote(n.label), close)
		}
		for _, sub := range c.subs {
			fmt.Fprintf(b, "%ssubgraph %s [%s]\n", indent, sub.id, mermaidQuote(sub.label))
			emit(sub, indent+"  ")
			fmt.Fprintf(b, "%send\n", indent)
		}
	}
	emit(d.root, "  ")
	for _, e := range d.edges {
		fmt.Fprintf(b, "  %s --> %s\n", e[0], e[1])
	}
	return b.Flush()
}

type nodeKind int

const (
	kindStep   nodeKind = iota // dispatched to a queue
	kindStart                  // __start__
	kindEnd                    // __end__
	kindFanOut                 // a fan-out step starting its children
	kindJoin                   // a fan-out step collecting its children
)

var dotShape = map[nodeKind]string{
	kindStep:   "",
	kindStart:  ", shape=oval",
	kindEnd:    ", shape=oval",
	kindFanOut: ", shape=trapezium",
	kindJoin:   ", shape=invtrapezium",
}

func mermaidShape(k nodeKind) (string, string) {
	switch k {
	case kindStart, kindEnd:
		return "([", "])"
	case kindFanOut:
		return "[/", "\\]"
	case kindJoin:
		return "[\\", "/]"
	default:
		return "[", "]"
	}
}

// drawing is the syntax-neutral layout both writers print: nodes grouped
// in nested clusters, and edges between node ids.
type drawing struct {
	root  *cluster
	edges [][2]string
	next  int // last id handed out
	count int // nodes drawn; drawing stops past MaxDrawnNodes
}

type cluster struct {
	id, label string
	nodes     []drawNode
	subs      []*cluster
}

type drawNode struct {
	id, label string
	kind      nodeKind
}

func newDrawing(workflows []*Workflow) *drawing {
	d := &drawing{root: &cluster{}}
	for _, w := range workflows {
		c := d.root
		if len(workflows) > 1 {
			c = d.cluster(d.root, w.Name)
		}
		start := d.node(c, Start, kindStart)
		end := d.node(c, End, kindEnd)
		d.graph(w.Graph, c, w.Namespace, start, end)
	}
	return d
}

func (d *drawing) id() string {
	d.next++
	return fmt.Sprintf("n%d", d.next)
}

func (d *drawing) node(c *cluster, label string, kind nodeKind) string {
	d.count++
	id := d.id()
	c.nodes = append(c.nodes, drawNode{id: id, label: label, kind: kind})
	return id
}

func (d *drawing) cluster(parent *cluster, label string) *cluster {
	c := &cluster{id: d.id(), label: label}
	parent.subs = append(parent.subs, c)
	return c
}

// graph draws g into c, with start and end standing for __start__ and
// __end__. A task shared by several steps is drawn once per step.
func (d *drawing) graph(g *Graph, c *cluster, namespace, start, end string) {
	in := make(map[string]string, len(g.Steps))  // where edges into a step go
	out := make(map[string]string, len(g.Steps)) // where edges out of it leave
	if d.count > MaxDrawnNodes {
		return
	}
	for _, st := range g.Steps {
		if st.Task == nil {
			label := st.Name
			if st.Wait != nil {
				label += "\nwaits for signal " + st.Wait.Signal
			} else if st.Sleep > 0 {
				label += "\nsleeps " + st.Sleep.String()
			} else if st.Queue != qualifyQueue(namespace, st.Name) {
				label += "\nqueue: " + st.Queue
			}
			id := d.node(c, label, kindStep)
			in[st.Name], out[st.Name] = id, id
			continue
		}
		t := st.Task
		sub := d.cluster(c, fmt.Sprintf("%s (task %s)", st.Name, t.Name))
		in[st.Name] = d.node(sub, "for each "+t.ItemKey+" in "+t.ItemListKey, kindFanOut)
		out[st.Name] = d.node(sub, "collect "+t.ItemListKey, kindJoin)
		d.graph(t.Graph, sub, namespace, in[st.Name], out[st.Name])
	}
	for _, st := range g.Steps {
		for _, dep := range st.Depends {
			from := start
			if dep != Start {
				from = out[dep]
			}
			d.edges = append(d.edges, [2]string{from, in[st.Name]})
		}
	}
	for _, st := range g.Terminal {
		d.edges = append(d.edges, [2]string{out[st.Name], end})
	}
}

func qualifyQueue(namespace, queue string) string {
	if namespace == "" {
		return queue
	}
	return namespace + "." + queue
}

func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

func mermaidQuote(s string) string {
	r := strings.NewReplacer(`"`, "#quot;", "\n", "<br/>")
	return `"` + r.Replace(s) + `"`
}
