package view

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/internal/catchup"
	"github.com/stepwise-run/stepwise/internal/logkey"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/statekey"
)

// ErrNotReady is the reason given (503) while the view has not yet read the
// state topic up to where it stood when the view started.
var ErrNotReady = errors.New("stepwise: the request view is still catching up; try again in a moment")

// entryOverhead is the estimated fixed cost of one request in the view
// beyond the bytes of its records (maps, pointers, decoded fields); it only
// feeds the memory estimate of Stats.
const entryOverhead = 512

// View is an in-memory copy of the state topic: for every request its root
// record and the records of its live fan-out children, plus the completion
// when one was seen. It is filled by Run and read by the HTTP handlers.
//
// Invariants: mu.reqs holds an entry for every request with at least one
// record (or a completion) in the view; an entry's bytes is the sum of the
// encoded sizes of its records. Entries are replaced, never changed in
// place, once published: readers may keep a *Request after unlocking.
type View struct {
	conn kconn.Config
	log  *slog.Logger
	opts []kgo.Opt // extra client options (tests)

	ready     chan struct{} // closed once caught up
	readyOnce sync.Once

	mu struct {
		sync.RWMutex
		reqs map[string]*Request
		subs map[string]map[chan struct{}]struct{} // request id => subscribers
	}

	st viewCounters
}

type viewCounters struct {
	records, tombstones, bad, completions atomic.Uint64
	catchUpNanos                          atomic.Int64
	catchUpRecords                        atomic.Uint64 // tombstones included
	started                               atomic.Int64  // unix nanos
}

// Request is the view of one request. The view changes the one it holds in
// place; Get hands out copies, which the caller may read without a lock
// (the records they point to are never changed).
type Request struct {
	id         string
	root       *schemas.Record // nil until the root record is read
	rootSize   int
	children   map[string]held // live fan-out children by child path
	completion *schemas.Completion
	// widths remembers the number of children of fan-out steps of
	// instances whose details were dropped when they finished (key: the
	// step path, "docs[1]/pages"), so progress of nested fan-outs stays
	// known after the fact. Best effort: lost when the view restarts.
	widths map[string]int
	// progress holds the children finished so far of each running fan-out
	// step (key: the step path), read from its progress record; it is
	// copied into the parent record's step state on the way in, since
	// the processors write the parent only when the fan-out starts and
	// at the join.
	progress map[string]int
	bytes    int // encoded size of the records held
	seq      uint64
	changed  time.Time
}

// Option configures a View.
type Option func(*View)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(v *View) { v.log = l } }

// WithClientOpts appends options to the view's Kafka client.
func WithClientOpts(opts ...kgo.Opt) Option {
	return func(v *View) { v.opts = append(v.opts, opts...) }
}

// NewView returns a view of the installation conn points at. Run fills it.
func New(conn kconn.Config, opts ...Option) *View {
	v := &View{conn: conn, log: slog.Default(), ready: make(chan struct{})}
	for _, o := range opts {
		o(v)
	}
	v.mu.reqs = map[string]*Request{}
	v.mu.subs = map[string]map[chan struct{}]struct{}{}
	return v
}

// Ready is closed once the view has read the state topic up to where it
// stood when Run began.
func (v *View) Ready() <-chan struct{} { return v.ready }

// Run reads the state and completions topics until ctx ends. It waits for
// the topics to exist (a fresh installation), so it can start before the
// processors create them. The view is ready once the state topic is read
// by the catch-up rule (package catchup) to its high watermarks of the
// moment Run began.
func (v *View) Run(ctx context.Context) error {
	base, err := v.conn.Opts()
	if err != nil {
		return err
	}
	v.st.started.Store(time.Now().UnixNano())
	state, comps := v.conn.Prefix.State(), v.conn.Prefix.Completions()
	cl, err := kgo.NewClient(append(append(base, v.opts...), catchup.ClientOpts()...)...)
	if err != nil {
		return fmt.Errorf("stepwise: view client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	targets, compEnds, err := v.waitTopics(ctx, adm, state, comps)
	if err != nil {
		return err
	}
	consume := map[string]map[int32]kgo.Offset{state: {}, comps: {}}
	for p := range targets {
		consume[state][p] = kgo.NewOffset().AtStart()
	}
	for p, end := range compEnds {
		consume[comps][p] = kgo.NewOffset().At(end)
	}
	cl.AddConsumePartitions(consume)

	cu := catchup.NewTracker(state, targets)
	for {
		if cu.Done() {
			v.markReady()
		}
		fs := v.poll(ctx, cl, !cu.Done())
		if ctx.Err() != nil {
			return nil
		}
		var completed []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic == state && cu.Observe(r) && !r.Attrs.IsControl() {
				v.st.catchUpRecords.Add(1)
			}
			if r.Attrs.IsControl() {
				return
			}
			switch r.Topic {
			case state:
				v.applyState(r)
			case comps:
				completed = append(completed, r)
			}
		})
		// A completion and the state records of its transaction often
		// come in one poll: apply the state first, so that whoever a
		// completion wakes finds the final records.
		for _, r := range completed {
			v.applyCompletion(r)
		}
		if !cu.Done() {
			if _, err := cu.EndPoll(ctx, adm); err != nil && ctx.Err() == nil {
				v.log.Warn("view: catching up", logkey.Error, err)
			}
		}
	}
}

// poll returns the next fetches. While catching up it waits at most
// catchup.PollWait, so that a partition with nothing more to deliver is
// noticed (the fallback of the catch-up rule).
func (v *View) poll(ctx context.Context, cl *kgo.Client, catchingUp bool) kgo.Fetches {
	pctx := ctx
	if catchingUp {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, catchup.PollWait)
		defer cancel()
	}
	fs := cl.PollFetches(pctx)
	fs.EachError(func(t string, p int32, err error) {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			v.log.Warn("view fetch error", "topic", t, "partition", p, logkey.Error, err)
		}
	})
	return fs
}

// waitTopics returns the catch-up targets of the state partitions and the
// end offsets of the completions partitions, once both topics exist.
func (v *View) waitTopics(ctx context.Context, adm *kadm.Client, state, comps string) (map[int32]int64, map[int32]int64, error) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		targets, err1 := catchup.Targets(ctx, adm, state, nil)
		ce, err2 := adm.ListEndOffsets(ctx, comps)
		err := errors.Join(err1, err2)
		if err == nil {
			err = ce.Error()
		}
		if err == nil && len(ce[comps]) > 0 {
			ends := map[int32]int64{}
			ce.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
			return targets, ends, nil
		}
		if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
			v.log.Warn("view: cannot list topic offsets yet", logkey.Error, err)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (v *View) markReady() {
	v.readyOnce.Do(func() {
		d := time.Since(time.Unix(0, v.st.started.Load()))
		v.st.catchUpNanos.Store(int64(d))
		v.mu.RLock()
		n := len(v.mu.reqs)
		v.mu.RUnlock()
		v.log.Info("view caught up", "duration", d, "records", v.st.catchUpRecords.Load(), "requests", n)
		close(v.ready)
	})
}

func (v *View) applyState(r *kgo.Record) {
	id, path, err := statekey.Parse(string(r.Key))
	if err != nil {
		v.st.bad.Add(1)
		v.log.Error("view: skipping state record", "partition", r.Partition, "offset", r.Offset, logkey.Error, err)
		return
	}
	var rec *schemas.Record
	if r.Value != nil {
		var err error
		rec, err = schemas.DecodeRecord(r.Value)
		if err != nil {
			v.st.bad.Add(1)
			v.log.Error("view: skipping unreadable state record", "partition", r.Partition, "offset", r.Offset, "key", string(r.Key), logkey.Error, err)
			return
		}
		v.st.records.Add(1)
	} else {
		v.st.tombstones.Add(1)
	}
	v.apply(id, path, rec, len(r.Value))
}

// apply sets (rec != nil) or drops (rec == nil) one record of request id;
// size is its encoded size. It changes the held request in place: a wide
// fan-out changes one child at a time, and copying every child on each
// change would cost the square of the width. Readers get copies (get).
func (v *View) apply(id, path string, rec *schemas.Record, size int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := v.mu.reqs[id]
	if n == nil {
		if rec == nil {
			return
		}
		n = &Request{id: id}
		v.mu.reqs[id] = n
	}
	n.seq++
	n.changed = time.Now()
	defer v.notifyLocked(id)
	if statekey.IsProgress(path) {
		if rec == nil {
			delete(n.progress, path)
			return
		}
		if n.progress == nil {
			n.progress = map[string]int{}
		}
		n.progress[path] = rec.Done
		parentPath, _ := statekey.SplitStep(path)
		if parentPath == "" && n.root != nil {
			n.root = withProgress(n.root, n.progress)
		} else if h, ok := n.children[parentPath]; ok {
			n.children[parentPath] = held{rec: withProgress(h.rec, n.progress), size: h.size}
		}
		return
	}
	rec = withProgress(rec, n.progress)
	if path == "" {
		if rec == nil {
			// The request was forgotten (expired): so is its view.
			delete(v.mu.reqs, id)
			return
		}
		n.bytes += size - n.rootSize
		n.root, n.rootSize = rec, size
		return
	}
	if prev, ok := n.children[path]; ok {
		n.bytes -= prev.size
		if rec != nil && rec.Steps == nil && prev.rec.Steps != nil {
			n.widths = rememberWidths(n.widths, path, prev.rec)
		}
	}
	if rec == nil {
		delete(n.children, path)
		return
	}
	if n.children == nil {
		n.children = map[string]held{}
	}
	n.children[path] = held{rec: rec, size: size}
	n.bytes += size
}

func (v *View) applyCompletion(r *kgo.Record) {
	var c schemas.Completion
	if err := json.Unmarshal(r.Value, &c); err != nil || c.Request == "" {
		v.log.Warn("view: skipping unreadable completion", "partition", r.Partition, "offset", r.Offset, logkey.Error, err)
		return
	}
	c.Partition = r.Partition
	v.st.completions.Add(1)
	v.mu.Lock()
	defer v.mu.Unlock()
	n := v.mu.reqs[c.Request]
	if n == nil {
		n = &Request{id: c.Request}
		v.mu.reqs[c.Request] = n
	}
	n.seq++
	n.changed = time.Now()
	n.completion = &c
	v.notifyLocked(c.Request)
}

func (v *View) notifyLocked(id string) {
	for ch := range v.mu.subs[id] {
		select {
		case ch <- struct{}{}:
		default: // a change is already pending for this subscriber
		}
	}
}

// Get returns a snapshot of request id, or nil: a copy the caller may read
// without the lock (the records it points to are never changed).
func (v *View) Get(id string) *Request {
	v.mu.RLock()
	defer v.mu.RUnlock()
	r := v.mu.reqs[id]
	if r == nil {
		return nil
	}
	c := *r
	c.children = maps.Clone(r.children)
	c.progress = maps.Clone(r.progress)
	c.widths = maps.Clone(r.widths)
	return &c
}

// Subscribe returns a channel that receives a value after each change of
// request id (changes may be coalesced), and the function that ends the
// subscription.
func (v *View) Subscribe(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	v.mu.Lock()
	if v.mu.subs[id] == nil {
		v.mu.subs[id] = map[chan struct{}]struct{}{}
	}
	v.mu.subs[id][ch] = struct{}{}
	v.mu.Unlock()
	return ch, func() {
		v.mu.Lock()
		delete(v.mu.subs[id], ch)
		if len(v.mu.subs[id]) == 0 {
			delete(v.mu.subs, id)
		}
		v.mu.Unlock()
	}
}

// WaitFor waits until cond holds for request id's snapshot (nil when the
// view has none), ctx ends, or timeout passes; it returns the last
// snapshot and whether cond held.
func (v *View) WaitFor(ctx context.Context, id string, timeout time.Duration, cond func(*Request) bool) (*Request, bool) {
	ch, cancel := v.Subscribe(id)
	defer cancel()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		r := v.Get(id)
		if cond(r) {
			return r, true
		}
		select {
		case <-ch:
		case <-t.C:
			return v.Get(id), false
		case <-ctx.Done():
			return v.Get(id), false
		}
	}
}

// Finished reports whether a request has ended, and how.
func (r *Request) Finished() (schemas.CompletionStatus, bool) {
	if r == nil {
		return "", false
	}
	if r.root != nil && r.root.Status != schemas.Running {
		return schemas.CompletionStatus(r.root.Status), true
	}
	if r.completion != nil {
		return r.completion.Status, true
	}
	return "", false
}

// ID is the request's id.
func (r *Request) ID() string { return r.id }

// HasRoot reports whether the request's root record was read (a request
// may be known from its completion alone for a moment).
func (r *Request) HasRoot() bool { return r.root != nil }

// Seq grows with every change the view saw of the request.
func (r *Request) Seq() uint64 { return r.seq }

// Instance returns the record of the instance at path ("" for the root),
// or nil.
func (r *Request) Instance(path string) *schemas.Record {
	if path == "" {
		return r.root
	}
	if h, ok := r.children[path]; ok {
		return h.rec
	}
	return nil
}

// Records returns the request's record and its live children's, in path
// order (the request's own first).
func (r *Request) Records() []*schemas.Record {
	paths := make([]string, 0, len(r.children))
	for p := range r.children {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, statekey.Compare)
	out := make([]*schemas.Record, 0, len(paths)+1)
	if r.root != nil {
		out = append(out, r.root)
	}
	for _, p := range paths {
		out = append(out, r.children[p].rec)
	}
	return out
}

// Completion returns the completion of a finished request, as the
// completions topic carries it (completion.schema.json): from the root
// record when it is read, else the completion seen. ok is false while the
// request runs.
func (r *Request) Completion() (c schemas.Completion, ok bool) {
	if r.root != nil && r.root.Status != schemas.Running {
		return schemas.Completion{Request: r.id, Workflow: r.root.Workflow, Status: schemas.CompletionStatus(r.root.Status),
			Output: r.root.Output, Error: r.root.Error, Started: r.root.Created, Finished: r.root.Updated}, true
	}
	if r.completion != nil {
		return *r.completion, true
	}
	return schemas.Completion{}, false
}

// held is a child record and its encoded size.
type held struct {
	rec  *schemas.Record
	size int
}

// RequestSummary is one row of a request list.
type RequestSummary struct {
	ID       string    `json:"id"`
	Workflow string    `json:"workflow"`
	Status   string    `json:"status"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
	Error    string    `json:"error,omitempty"`
}

// Summary is r as one row of a request list.
func (r *Request) Summary() RequestSummary {
	s := RequestSummary{ID: r.id}
	switch {
	case r.root != nil:
		s.Workflow, s.Status, s.Created, s.Updated = r.root.Workflow, string(r.root.Status), r.root.Created, r.root.Updated
		if r.root.Error != nil {
			s.Error = r.root.Error.Message
		}
	case r.completion != nil:
		c := r.completion
		s.Workflow, s.Status, s.Created, s.Updated = c.Workflow, string(c.Status), c.Started, c.Finished
		if c.Error != nil {
			s.Error = c.Error.Message
		}
	}
	if s.Updated.IsZero() {
		s.Updated = s.Created
	}
	return s
}

// list returns the summaries matching workflow and status ("" matches
// any), newest first (ties by id), after the cursor position.
func (v *View) list(workflow, status string, after *cursorAt, limit int) (rows []RequestSummary, more bool) {
	v.mu.RLock()
	all := make([]RequestSummary, 0, len(v.mu.reqs))
	for _, r := range v.mu.reqs {
		s := r.Summary()
		if s.Workflow == "" || (workflow != "" && s.Workflow != workflow) || (status != "" && s.Status != status) {
			continue
		}
		all = append(all, s)
	}
	v.mu.RUnlock()
	slices.SortFunc(all, func(a, b RequestSummary) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	i := 0
	if after != nil {
		i, _ = slices.BinarySearchFunc(all, *after, func(s RequestSummary, c cursorAt) int {
			if x := c.Created.Compare(s.Created); x != 0 {
				return x
			}
			if x := strings.Compare(c.ID, s.ID); x != 0 {
				return x
			}
			return -1 // the cursor row itself sorts before: skip it
		})
	}
	all = all[i:]
	if len(all) > limit {
		return all[:limit], true
	}
	return all, false
}

// List returns a page of requests, newest first: those of workflow and
// with status ("" matches any; status is running, succeeded, failed or
// cancelled), at most limit (1 to 1000), after the cursor of a previous
// page ("" for the first).
func (v *View) List(workflow, status, cursor string, limit int) (RequestList, error) {
	after, err := listArgs(status, cursor, limit)
	if err != nil {
		return RequestList{}, err
	}
	rows, more := v.list(workflow, status, after, limit)
	out := RequestList{Requests: rows}
	if more {
		last := rows[len(rows)-1]
		out.NextCursor = cursorAt{Created: last.Created, ID: last.ID}.encode()
	}
	return out, nil
}

// RequestList is a page of requests (GET /api/v1/requests).
type RequestList struct {
	Requests   []RequestSummary `json:"requests"`
	NextCursor string           `json:"nextCursor,omitempty"`
}

// Errors of List.
var (
	ErrStatus = errors.New("stepwise: invalid status")
	ErrLimit  = errors.New("stepwise: invalid limit")
	ErrCursor = errors.New("stepwise: invalid cursor; pass the nextCursor of a previous page")
)

// ValidateList checks the arguments of List without listing: a program
// can refuse bad ones before the view has caught up.
func ValidateList(status, cursor string, limit int) error {
	_, err := listArgs(status, cursor, limit)
	return err
}

// listArgs checks the arguments of List and decodes the cursor.
func listArgs(status, cursor string, limit int) (*cursorAt, error) {
	if !validStatus(status) {
		return nil, fmt.Errorf("%w %q: use running, succeeded, failed or cancelled", ErrStatus, status)
	}
	if limit < 1 || limit > 1000 {
		return nil, fmt.Errorf("%w %d: give a number from 1 to 1000", ErrLimit, limit)
	}
	return decodeCursor(cursor)
}

func validStatus(s string) bool {
	switch schemas.Status(s) {
	case "", schemas.Running, schemas.StatusSucceeded, schemas.StatusFailed, schemas.StatusCancelled:
		return true
	}
	return false
}

// Stats are the view's figures, served at /api/v1/stats.
type Stats struct {
	Ready          bool    `json:"ready"`
	Requests       int     `json:"requests"`
	Children       int     `json:"children"`       // fan-out child records held
	RecordBytes    int64   `json:"recordBytes"`    // encoded size of the records held
	EstimatedBytes int64   `json:"estimatedBytes"` // record bytes plus a fixed cost per request
	BytesPerReq    float64 `json:"bytesPerRequest"`
	Records        uint64  `json:"recordsRead"`
	Tombstones     uint64  `json:"tombstonesRead"`
	Unreadable     uint64  `json:"unreadableRecords"`
	Completions    uint64  `json:"completionsRead"`
	CatchUpMillis  float64 `json:"catchUpMillis"`  // from Run's start to ready
	CatchUpRecords uint64  `json:"catchUpRecords"` // state records read before ready
	Subscribers    int     `json:"subscribers"`
}

// Len returns the number of requests the view holds.
func (v *View) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.mu.reqs)
}

// Stats returns the view's current figures.
func (v *View) Stats() Stats {
	v.mu.RLock()
	s := Stats{Requests: len(v.mu.reqs)}
	for _, r := range v.mu.reqs {
		s.Children += len(r.children)
		s.RecordBytes += int64(r.bytes)
	}
	for _, subs := range v.mu.subs {
		s.Subscribers += len(subs)
	}
	v.mu.RUnlock()
	select {
	case <-v.ready:
		s.Ready = true
	default:
	}
	s.EstimatedBytes = s.RecordBytes + int64(s.Requests)*entryOverhead
	if s.Requests > 0 {
		s.BytesPerReq = float64(s.EstimatedBytes) / float64(s.Requests)
	}
	s.Records, s.Tombstones = v.st.records.Load(), v.st.tombstones.Load()
	s.Unreadable, s.Completions = v.st.bad.Load(), v.st.completions.Load()
	s.CatchUpMillis = float64(v.st.catchUpNanos.Load()) / 1e6
	s.CatchUpRecords = v.st.catchUpRecords.Load()
	return s
}

// withProgress returns rec with the finished-children counts of its running
// fan-out steps taken from progress (a copy when anything changes).
func withProgress(rec *schemas.Record, progress map[string]int) *schemas.Record {
	if rec == nil || len(progress) == 0 {
		return rec
	}
	var out *schemas.Record
	for name, ss := range rec.Steps {
		done, ok := progress[statekey.StepPath(rec.Path, name)]
		if !ok || ss.Status != schemas.StepRunning || ss.Done == done {
			continue
		}
		if out == nil {
			c := *rec
			c.Steps = maps.Clone(rec.Steps)
			out = &c
		}
		sc := *ss
		sc.Done = done
		out.Steps[name] = &sc
	}
	if out == nil {
		return rec
	}
	return out
}

// rememberWidths returns w plus the fan-out widths of prev, a child record
// about to lose its step details.
func rememberWidths(w map[string]int, path string, prev *schemas.Record) map[string]int {
	if w == nil {
		w = map[string]int{}
	}
	for name, ss := range prev.Steps {
		if ss.Children > 0 {
			w[statekey.StepPath(path, name)] = ss.Children
		}
	}
	return w
}
