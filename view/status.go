package view

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/statekey"
	"github.com/stepwise-run/stepwise/topology"
)

// PreviewLimit is the default bound of a payload shown inline in a status
// document; a larger one is cut and marked truncated, with the URL of the
// whole.
const PreviewLimit = 4096

// Status is the status document of one request (GET /api/v1/requests/{id}).
type Status struct {
	ID       string `json:"id"`
	Workflow string `json:"workflow"`
	Version  int    `json:"version"` // the definition version it runs on
	// Status is running, succeeded, failed or cancelled.
	Status    string           `json:"status"`
	Partition int32            `json:"partition"` // home partition
	Created   time.Time        `json:"created"`
	Updated   time.Time        `json:"updated"`
	Finished  *time.Time       `json:"finished,omitempty"`
	Input     *Payload         `json:"input,omitempty"`
	Output    *Payload         `json:"output,omitempty"`
	Error     *schemas.Failure `json:"error,omitempty"`
	// Steps are the top-level steps in declaration order; steps not yet
	// started are "pending".
	Steps []StepView `json:"steps"`
	// Instances are the live fan-out children (at most the limit asked
	// for, in path order); a child's record is dropped once its parent
	// instance finishes, so a finished request has none.
	Instances      []Instance `json:"instances"`
	InstancesTotal int        `json:"instancesTotal"`
	// Nodes is the progress of every node of the workflow's DAG, by node
	// ID (see DAG): fan-out tasks' steps summed over their instances.
	Nodes map[string]*NodeProgress `json:"nodes"`
	// Signals are the signals the request keeps, in arrival order.
	Signals []SignalView `json:"signals,omitempty"`

	// Seq grows with every change the view saw of this request.
	Seq uint64 `json:"seq"`
}

// Payload is a JSON payload bounded for display: Value when it fits the
// limit, else Preview (its first bytes, as text) and Truncated.
type Payload struct {
	Value     json.RawMessage `json:"value,omitempty"`
	Preview   string          `json:"preview,omitempty"`
	Truncated bool            `json:"truncated"`
	Size      int             `json:"size"`
	URL       string          `json:"url"` // the whole payload
}

// StepView is one step of one graph instance.
type StepView struct {
	Path        string     `json:"path"` // step path: "ocr", "documents[1]/pages[7]/ocr"
	Node        string     `json:"node"` // DAG node ID: "documents/pages/ocr"
	Name        string     `json:"name"`
	Status      string     `json:"status"` // pending, running, waiting, succeeded, failed
	Attempt     int        `json:"attempt,omitempty"`
	MaxAttempts int        `json:"maxAttempts,omitempty"`
	Started     *time.Time `json:"started,omitempty"`
	Ended       *time.Time `json:"ended,omitempty"`
	DurationMS  float64    `json:"durationMs,omitempty"`
	RetryAt     *time.Time `json:"retryAt,omitempty"`
	Deadline    *time.Time `json:"deadline,omitempty"`
	Error       string     `json:"error,omitempty"` // the last failure, even when a retry succeeded
	Children    int        `json:"children,omitempty"`
	Done        int        `json:"done,omitempty"`
	Output      *Payload   `json:"output,omitempty"`
	// WaitsFor is the signal a wait step waits for; HeartbeatDue and
	// Heartbeat the heartbeat due time and last details of a running
	// attempt with a heartbeat timeout.
	WaitsFor     string          `json:"waitsFor,omitempty"`
	HeartbeatDue *time.Time      `json:"heartbeatDue,omitempty"`
	Heartbeat    json.RawMessage `json:"heartbeat,omitempty"`
}

// SignalView is a signal the request received and keeps (first per name
// and step): the data is the output of the steps that took it.
type SignalView struct {
	Name     string    `json:"name"`
	Step     string    `json:"step,omitempty"` // "": for every step waiting for Name
	Received time.Time `json:"received"`
}

// Instance is one live fan-out child.
type Instance struct {
	Path    string     `json:"path"` // "documents[1]"
	Task    string     `json:"task"`
	ID      string     `json:"id"`
	Status  string     `json:"status"`
	Created time.Time  `json:"created"`
	Input   *Payload   `json:"input,omitempty"`
	Output  *Payload   `json:"output,omitempty"`
	Steps   []StepView `json:"steps"`
}

// NodeProgress sums the states of one DAG node over its instances.
type NodeProgress struct {
	// Status is pending, running, succeeded, failed or cancelled (a
	// node left unfinished by a failed or cancelled request).
	Status    string `json:"status"`
	Total     int    `json:"total"` // instances of the step known
	Pending   int    `json:"pending"`
	Running   int    `json:"running"`
	Waiting   int    `json:"waiting"` // failed, waiting for a retry
	Succeeded int    `json:"succeeded"`
	Failed    int    `json:"failed"`
	Cancelled int    `json:"cancelled"` // stopped by a cancel, or by a failure elsewhere
	// Fan-out nodes: children started and finished, summed.
	Children     int        `json:"children,omitempty"`
	ChildrenDone int        `json:"childrenDone,omitempty"`
	MaxAttempt   int        `json:"maxAttempt,omitempty"` // highest attempt seen
	Started      *time.Time `json:"started,omitempty"`    // earliest start
	Ended        *time.Time `json:"ended,omitempty"`      // latest end
	Error        string     `json:"error,omitempty"`      // a failure message seen
}

// Definitions resolves the workflow a request runs on (definitions.Catalog
// does): by name and version, 0 for the current one.
type Definitions interface {
	Resolve(workflow string, version int) (*topology.Workflow, int, error)
}

// StatusOptions bound a status document.
type StatusOptions struct {
	PreviewLimit int // payloads larger than this are cut (see Payload)
	Instances    int // live children listed at most
}

// BuildStatus renders r (which must have a root record or a completion)
// as a status document.
// defs gives the graph of the definition version the request runs on.
func BuildStatus(r *Request, defs Definitions, o StatusOptions) *Status {
	base := "/api/v1/requests/" + url.PathEscape(r.id) + "/payload"
	s := &Status{ID: r.id, Seq: r.seq, Steps: []StepView{}, Instances: []Instance{}, Nodes: map[string]*NodeProgress{}}
	if r.root == nil {
		c := r.completion
		s.Workflow, s.Status, s.Partition, s.Created, s.Updated = c.Workflow, string(c.Status), c.Partition, c.Started, c.Finished
		s.Version = c.Version
		s.Finished = &c.Finished
		s.Error = c.Error
		s.Output = bound(c.Output, o.PreviewLimit, base+"?part=output")
		return s
	}
	root := r.root
	s.Workflow, s.Status, s.Partition = root.Workflow, string(root.Status), root.Partition
	s.Created, s.Updated = root.Created, root.Updated
	if root.Status != schemas.Running {
		s.Finished = &s.Updated
	}
	s.Input = bound(root.Input, o.PreviewLimit, base+"?part=input")
	s.Output = bound(root.Output, o.PreviewLimit, base+"?part=output")
	s.Error = root.Error
	for _, sig := range root.Signals {
		s.Signals = append(s.Signals, SignalView{Name: sig.Name, Step: sig.Step, Received: sig.Received})
	}

	s.Version = root.DefinitionVersion()
	var g *topology.Graph
	w, _, err := defs.Resolve(root.Workflow, s.Version)
	if err == nil {
		g = w.Graph
	}
	s.Steps = stepViews(root, g, "", o.PreviewLimit, base)

	paths := make([]string, 0, len(r.children))
	for p := range r.children {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, statekey.Compare)
	s.InstancesTotal = len(paths)
	for _, p := range paths[:min(len(paths), o.Instances)] {
		c := r.children[p].rec
		inst := Instance{Path: p, Task: c.Task, ID: c.ID, Status: string(c.Status), Created: c.Created,
			Input:  bound(c.Input, o.PreviewLimit, base+"?part=input&instance="+url.QueryEscape(p)),
			Output: bound(c.Output, o.PreviewLimit, base+"?part=output&instance="+url.QueryEscape(p))}
		var tg *topology.Graph
		if w != nil && w.Tasks[c.Task] != nil {
			tg = w.Tasks[c.Task].Graph
		}
		inst.Steps = stepViews(c, tg, statekey.Node(p), o.PreviewLimit, base)
		s.Instances = append(s.Instances, inst)
	}
	if w != nil {
		s.Nodes = progress(r, w)
	}
	return s
}

// stepViews lists the steps of one instance: those of g in declaration
// order (pending when not started), or, when the definition is not known
// here, those of the record by name.
func stepViews(inst *schemas.Record, g *topology.Graph, nodePrefix string, limit int, base string) []StepView {
	var names []string
	if g != nil {
		for _, st := range g.Steps {
			names = append(names, st.Name)
		}
	} else {
		for n := range inst.Steps {
			names = append(names, n)
		}
		slices.Sort(names)
	}
	out := make([]StepView, 0, len(names))
	for _, name := range names {
		path := statekey.StepPath(inst.Path, name)
		sv := StepView{Path: path, Node: statekey.StepPath(nodePrefix, name), Name: name, Status: "pending"}
		if g != nil {
			if st := g.ByName[name]; st.Task == nil {
				sv.MaxAttempts = st.Retry.MaxAttempts
			}
			if st := g.ByName[name]; st.Wait != nil {
				sv.WaitsFor = st.Wait.Signal
			}
		}
		if ss := inst.Steps[name]; ss != nil {
			sv.Status, sv.Attempt, sv.Error = string(ss.Status), ss.Attempt, ss.Error
			sv.Started, sv.Ended = timePtr(ss.Started), timePtr(ss.Ended)
			sv.RetryAt, sv.Deadline = timePtr(ss.RetryAt), timePtr(ss.Deadline)
			if sv.Started != nil && sv.Ended != nil {
				sv.DurationMS = float64(ss.Ended.Sub(ss.Started).Microseconds()) / 1000
			}
			sv.Children, sv.Done = ss.Children, ss.Done
			sv.HeartbeatDue, sv.Heartbeat = timePtr(ss.HeartbeatDue), ss.Heartbeat
			sv.Output = bound(ss.Output, limit, base+"?step="+url.QueryEscape(path))
		} else if inst.Status == schemas.StatusSucceeded {
			sv.Status = string(schemas.StepSucceeded) // details dropped when the instance finished
		}
		out = append(out, sv)
	}
	return out
}

// progress sums the step states of every DAG node of w over r's records.
func progress(r *Request, w *topology.Workflow) map[string]*NodeProgress {
	b := &progressBuilder{r: r, nodes: map[string]*NodeProgress{}}
	b.declare(w.Graph, "", 0)
	b.walk(r.root, "", w.Graph, "", instLive)
	for _, p := range b.nodes {
		p.Status = p.overall()
	}
	b.markEnd(r.root)
	return b.nodes
}

// progressBuilder sums the steps of a request's graph instances into one
// NodeProgress per node of its DAG.
type progressBuilder struct {
	r     *Request
	nodes map[string]*NodeProgress // by node id (step path without indexes)
}

// instKnown says what is known of a graph instance being walked.
type instKnown int

const (
	instLive    instKnown = iota // the instance's record is known
	instAllDone                  // gone, but known to have succeeded
	instNotYet                   // not started, or not known
)

// declare adds every node of g under prefix, started or not, up to the
// drawing bound.
func (b *progressBuilder) declare(g *topology.Graph, prefix string, depth int) {
	for _, st := range g.Steps {
		if len(b.nodes) > topology.MaxDrawnNodes || depth > 64 {
			return
		}
		id := statekey.StepPath(prefix, st.Name)
		if b.nodes[id] == nil {
			b.nodes[id] = &NodeProgress{}
		}
		if st.Task != nil {
			b.declare(st.Task.Graph, id, depth+1)
		}
	}
}

// walk counts the steps of one graph instance (inst at instPath, nil
// unless known is instLive) and recurses into its fan-outs' children.
func (b *progressBuilder) walk(inst *schemas.Record, instPath string, g *topology.Graph, prefix string, known instKnown) {
	for _, st := range g.Steps {
		id := statekey.StepPath(prefix, st.Name)
		p := b.nodes[id]
		if p == nil {
			continue // beyond the drawing bound
		}
		var ss *schemas.StepState
		state := "pending"
		switch {
		case known == instLive && inst.Steps[st.Name] != nil:
			ss = inst.Steps[st.Name]
			state = string(ss.Status)
		case known == instLive && inst.Status == schemas.StatusSucceeded, known == instAllDone:
			state = string(schemas.StepSucceeded)
		}
		p.count(state, ss)
		if st.Task != nil {
			b.walkChildren(p, statekey.StepPath(instPath, st.Name), st.Task.Graph, id, state, ss)
		}
	}
}

// walkChildren walks the children of the fan-out step at stepPath, whose
// state is state (ss when its record is known).
func (b *progressBuilder) walkChildren(p *NodeProgress, stepPath string, g *topology.Graph, id, state string, ss *schemas.StepState) {
	width, done := 0, 0
	if ss != nil {
		width, done = ss.Children, ss.Done
	} else if state == string(schemas.StepSucceeded) {
		width = b.r.widths[stepPath]
		done = width
	}
	p.Children += width
	p.ChildrenDone += done
	for i := range width {
		cp := stepPath + "[" + strconv.Itoa(i) + "]"
		switch c, ok := b.r.children[cp]; {
		case ok:
			b.walk(c.rec, cp, g, id, instLive)
		case state == string(schemas.StepSucceeded):
			b.walk(nil, cp, g, id, instAllDone)
		default:
			b.walk(nil, cp, g, id, instNotYet)
		}
	}
}

// markEnd corrects the nodes for how the request ended: the failed step of
// a failed request (whose child record may be gone) and the groups around
// it are failed, and what still looked running was cancelled.
func (b *progressBuilder) markEnd(root *schemas.Record) {
	if root.Status == schemas.StatusFailed && root.Error != nil && root.Error.Step != "" {
		id := statekey.Node(root.Error.Step)
		for {
			if p := b.nodes[id]; p != nil {
				p.Status = "failed"
				if p.Error == "" {
					p.Error = root.Error.Message
				}
			}
			if !strings.Contains(id, "/") {
				break
			}
			id, _ = statekey.SplitStep(id)
		}
	}
	if root.Status == schemas.StatusFailed || root.Status == schemas.StatusCancelled {
		for _, p := range b.nodes {
			if p.Status == "running" {
				p.Status = "cancelled"
			}
		}
	}
}

// count adds one instance of the node in state (its step state ss, when
// known).
func (p *NodeProgress) count(state string, ss *schemas.StepState) {
	p.Total++
	switch state {
	case "pending":
		p.Pending++
	case string(schemas.StepRunning):
		p.Running++
	case string(schemas.StepWaiting):
		p.Waiting++
	case string(schemas.StepSucceeded):
		p.Succeeded++
	case string(schemas.StepFailed):
		p.Failed++
	case string(schemas.StepCancelled):
		p.Cancelled++
	}
	if ss == nil {
		return
	}
	p.MaxAttempt = max(p.MaxAttempt, ss.Attempt)
	if !ss.Started.IsZero() && (p.Started == nil || ss.Started.Before(*p.Started)) {
		p.Started = timePtr(ss.Started)
	}
	if !ss.Ended.IsZero() && (p.Ended == nil || ss.Ended.After(*p.Ended)) {
		p.Ended = timePtr(ss.Ended)
	}
	if ss.Error != "" && (p.Error == "" || ss.Status == schemas.StepFailed) {
		p.Error = ss.Error
	}
}

// overall is the node's status from its counts: failed if any instance
// failed, running while any runs or waits, then cancelled, succeeded when
// all did, running when some did, else pending.
func (p *NodeProgress) overall() string {
	switch {
	case p.Failed > 0:
		return "failed"
	case p.Running+p.Waiting > 0:
		return "running"
	case p.Cancelled > 0:
		return "cancelled"
	case p.Total > 0 && p.Succeeded == p.Total:
		return "succeeded"
	case p.Succeeded > 0:
		return "running"
	default:
		return "pending"
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// bound returns raw as a Payload of at most limit bytes inline, or nil when
// raw is empty.
func bound(raw json.RawMessage, limit int, url string) *Payload {
	if len(raw) == 0 {
		return nil
	}
	p := &Payload{Size: len(raw), URL: url}
	if len(raw) <= limit {
		p.Value = raw
		return p
	}
	cut := limit
	for cut > 0 && !utf8Start(raw[cut]) {
		cut-- // do not split a UTF-8 sequence
	}
	p.Preview, p.Truncated = string(raw[:cut]), true
	return p
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// cursorAt is a position in a request list: the last row of the previous
// page.
type cursorAt struct {
	Created time.Time
	ID      string
}

func (c cursorAt) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.Created.UnixNano(), 10) + " " + c.ID))
}

// decodeCursor parses an encoded cursor; "" is the start (nil).
func decodeCursor(s string) (*cursorAt, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, ErrCursor
	}
	ns, id, ok := strings.Cut(string(b), " ")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return nil, ErrCursor
	}
	return &cursorAt{Created: time.Unix(0, n), ID: id}, nil
}
