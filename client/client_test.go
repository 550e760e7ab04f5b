package client

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/internal/kfaketest"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/schemas/schematest"
	"github.com/stepwise-run/stepwise/statekey"
	"github.com/stepwise-run/stepwise/topology"
)

const partitions = 3

var prefix = topology.DefaultPrefix

func cluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	return kfaketest.Cluster(t, kfake.SeedTopics(partitions, prefix.Requests(), prefix.Completions(), prefix.State()))
}

func newClient(t *testing.T, c *kfake.Cluster) *Client {
	t.Helper()
	cl, err := New(WithBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// processor is a stand-in for the real processors: for each start it
// writes a running state record and, when release says so, a succeeded
// one plus the completion, each in a transaction on the home partition.
type processor struct {
	t       *testing.T
	in      *kgo.Client
	out     *kgo.Client
	mu      sync.Mutex
	started map[string]schemas.Request
	homes   map[string]int32
}

func newProcessor(t *testing.T, c *kfake.Cluster) *processor {
	t.Helper()
	p := &processor{t: t, started: map[string]schemas.Request{}, homes: map[string]int32{}}
	var err error
	p.in, err = kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(prefix.Requests()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	p.out, err = kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID("test-processor"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.in.Close)
	t.Cleanup(p.out.Close)
	return p
}

// next consumes the next request record.
func (p *processor) next() (schemas.Request, int32) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		recs := p.in.PollRecords(ctx, 1).Records()
		if len(recs) > 0 {
			var m schemas.Request
			if err := json.Unmarshal(recs[0].Value, &m); err != nil {
				p.t.Fatalf("request value %s: %v", recs[0].Value, err)
			}
			if string(recs[0].Key) != m.ID {
				p.t.Fatalf("request key %q, id %q", recs[0].Key, m.ID)
			}
			// What the client writes is what the protocol says.
			schematest.Valid(p.t, m.Type+".schema.json", recs[0].Value)
			return m, recs[0].Partition
		}
		if ctx.Err() != nil {
			p.t.Fatal("no request arrived")
		}
	}
}

// txn writes records in one transaction, committed or aborted.
func (p *processor) txn(commit bool, recs ...*kgo.Record) {
	p.t.Helper()
	ctx := context.Background()
	if err := p.out.BeginTransaction(); err != nil {
		p.t.Fatal(err)
	}
	for _, r := range recs {
		if err := p.out.ProduceSync(ctx, r).FirstErr(); err != nil {
			p.t.Fatal(err)
		}
	}
	if err := p.out.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		p.t.Fatal(err)
	}
}

func stateRec(r *schemas.Record) *kgo.Record {
	return &kgo.Record{Topic: prefix.State(), Partition: r.Partition, Key: []byte(statekey.Format(r.Request, r.Path)), Value: schemas.EncodeRecord(r)}
}

func completionRec(c schemas.Completion) *kgo.Record {
	b, _ := json.Marshal(c)
	return &kgo.Record{Topic: prefix.Completions(), Partition: c.Partition, Key: []byte(c.Request), Value: b}
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func TestStartWait(t *testing.T) {
	c := cluster(t)
	cl := newClient(t, c)
	p := newProcessor(t, c)
	ctx := context.Background()

	id, err := cl.Start(ctx, "idp", "", json.RawMessage(`{"bundle": "b.pdf"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateID(id); err != nil || len(id) != 36 {
		t.Fatalf("generated id %q: %v", id, err)
	}
	msg, home := p.next()
	if msg.Type != "start" || msg.Workflow != "idp" || msg.ID != id || string(msg.Input) != `{"bundle":"b.pdf"}` {
		t.Fatalf("start record %+v", msg)
	}

	// The completion is written before Wait is even called: the offset
	// noted at Start must still find it.
	p.txn(true, completionRec(schemas.Completion{Request: "someone-else", Workflow: "idp", Status: schemas.Succeeded,
		Output: json.RawMessage(`{}`), Started: t0, Finished: t0, Partition: home}))
	p.txn(true, completionRec(schemas.Completion{Request: id, Workflow: "idp", Status: schemas.Succeeded,
		Output: json.RawMessage(`{"pages": 3}`), Started: t0, Finished: t0.Add(time.Second), Partition: home}))

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	comp, err := cl.Wait(wctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if comp.Request != id || comp.Status != schemas.Succeeded || string(comp.Output) != `{"pages":3}` || comp.Partition != home || !comp.Finished.Equal(t0.Add(time.Second)) {
		t.Fatalf("completion %+v", comp)
	}
}

// TestWaitRestart: starting an id that already finished is ignored by the
// processors; Wait then answers from the state instead of waiting for a
// completion that was written before the start.
func TestWaitRestart(t *testing.T) {
	c := cluster(t)
	cl := newClient(t, c)
	p := newProcessor(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.Start(ctx, "wc", "again-1", nil); err != nil {
		t.Fatal(err)
	}
	_, home := p.next()
	p.txn(true, stateRec(&schemas.Record{Request: "again-1", Workflow: "wc", Partition: home, Status: schemas.StatusCancelled,
		Error: &schemas.Failure{Message: "user asked"}, Created: t0, Updated: t0}),
		completionRec(schemas.Completion{Request: "again-1", Workflow: "wc", Status: schemas.Cancelled,
			Error: &schemas.Failure{Message: "user asked"}, Started: t0, Finished: t0, Partition: home}))
	if _, err := cl.Start(ctx, "wc", "again-1", nil); err != nil { // a no-op for the processors
		t.Fatal(err)
	}
	comp, err := cl.Wait(ctx, "again-1")
	if err != nil {
		t.Fatal(err)
	}
	if comp.Status != schemas.Cancelled || comp.Error.Message != "user asked" {
		t.Fatalf("completion %+v", comp)
	}
}

// TestWaitOtherClient: Wait on a request this client did not start goes
// through the state: finished ones answer from it, running ones are
// followed from the offset noted before the state was read.
func TestWaitOtherClient(t *testing.T) {
	c := cluster(t)
	starter := newClient(t, c)
	waiter := newClient(t, c)
	p := newProcessor(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	if _, err := waiter.Wait(ctx, "never-started"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Wait of an unknown request: %v", err)
	}

	// Finished before Wait: answered from the state record.
	if _, err := starter.Start(ctx, "wc", "done-1", nil); err != nil {
		t.Fatal(err)
	}
	_, home := p.next()
	p.txn(true, stateRec(&schemas.Record{Request: "done-1", Workflow: "wc", Partition: home, Status: schemas.StatusFailed,
		Error: &schemas.Failure{Step: "count", Attempt: 3, Message: "boom"}, Created: t0, Updated: t0.Add(time.Minute)}))
	comp, err := waiter.Wait(ctx, "done-1")
	if err != nil {
		t.Fatal(err)
	}
	if comp.Status != schemas.Failed || comp.Error == nil || comp.Error.Message != "boom" || !comp.Finished.Equal(t0.Add(time.Minute)) {
		t.Fatalf("completion from state %+v", comp)
	}

	// Running at Wait: followed on the completions topic.
	if _, err := starter.Start(ctx, "wc", "run-1", nil); err != nil {
		t.Fatal(err)
	}
	_, home = p.next()
	p.txn(true, stateRec(&schemas.Record{Request: "run-1", Workflow: "wc", Partition: home, Status: schemas.Running, Created: t0, Updated: t0}))
	done := make(chan *Completion, 1)
	go func() {
		comp, err := waiter.Wait(ctx, "run-1")
		if err != nil {
			t.Error(err)
		}
		done <- comp
	}()
	time.Sleep(300 * time.Millisecond) // let Wait read the state first
	p.txn(true, completionRec(schemas.Completion{Request: "run-1", Workflow: "wc", Status: schemas.Cancelled,
		Error: &schemas.Failure{Message: "user asked"}, Started: t0, Finished: t0, Partition: home}))
	select {
	case comp := <-done:
		if comp == nil || comp.Status != schemas.Cancelled {
			t.Fatalf("followed completion %+v", comp)
		}
	case <-ctx.Done():
		t.Fatal("Wait did not see the completion")
	}
}

// TestGet: the request's record and its children's, latest version each,
// without tombstoned children or other requests sharing the id as a
// prefix; a tail of aborted transactions does not stall the read.
func TestGet(t *testing.T) {
	c := cluster(t)
	cl := newClient(t, c)
	p := newProcessor(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	req := &schemas.Record{Request: "r-1", Workflow: "idp", Partition: 1, Status: schemas.Running, Created: t0, Updated: t0,
		Steps: map[string]*schemas.StepState{
			"split": {Status: schemas.StepSucceeded, Attempt: 1, Started: t0, Ended: t0.Add(time.Second)},
			"docs":  {Status: schemas.StepRunning, Children: 2, Done: 1, Started: t0.Add(time.Second)},
		}}
	child := func(i int, status schemas.StepStatus) *schemas.Record {
		return &schemas.Record{Request: "r-1", Workflow: "idp", Partition: 1, Path: "docs[" + string(rune('0'+i)) + "]", Task: "doc",
			Status: schemas.Running, Created: t0, Updated: t0,
			Steps: map[string]*schemas.StepState{"ocr": {Status: status, Attempt: 1, Started: t0.Add(time.Duration(2+i) * time.Second)}}}
	}
	p.txn(true, stateRec(req), stateRec(child(0, schemas.StepRunning)), stateRec(child(1, schemas.StepRunning)), stateRec(child(2, schemas.StepRunning)))
	p.txn(true, stateRec(child(0, schemas.StepSucceeded)),
		&kgo.Record{Topic: prefix.State(), Partition: 1, Key: []byte("r-1/docs[2]")}, // tombstone
		stateRec(&schemas.Record{Request: "r-10", Workflow: "idp", Partition: 1, Status: schemas.Running, Created: t0, Updated: t0}),
		stateRec(&schemas.Record{Request: "r-1x", Workflow: "idp", Partition: 2, Status: schemas.Running, Created: t0, Updated: t0}))
	// Aborted: must not be seen, and must not keep Get waiting.
	p.txn(false, stateRec(&schemas.Record{Request: "r-1", Workflow: "idp", Partition: 1, Status: schemas.StatusFailed, Created: t0, Updated: t0}))

	st, err := cl.Get(ctx, "r-1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Request.Status != schemas.Running || st.Request.Steps["docs"].Done != 1 {
		t.Fatalf("request record %+v", st.Request)
	}
	if len(st.Children) != 2 || st.Children[0].Path != "docs[0]" || st.Children[1].Path != "docs[1]" {
		t.Fatalf("children %v", st.Children)
	}
	if st.Children[0].Steps["ocr"].Status != schemas.StepSucceeded {
		t.Fatalf("child docs[0] is not at its latest version: %+v", st.Children[0].Steps["ocr"])
	}
	var paths []string
	for _, s := range st.Steps() {
		paths = append(paths, s.Path)
	}
	if got := strings.Join(paths, " "); got != "split docs docs[0]/ocr docs[1]/ocr" {
		t.Fatalf("steps %s", got)
	}

	if _, err := cl.Get(ctx, "r-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of an unknown request: %v", err)
	}
}

func TestCancel(t *testing.T) {
	c := cluster(t)
	cl := newClient(t, c)
	p := newProcessor(t, c)
	ctx := context.Background()
	if _, err := cl.Start(ctx, "wc", "c-1", nil); err != nil {
		t.Fatal(err)
	}
	_, home := p.next()
	if err := cl.Cancel(ctx, "c-1", "user asked"); err != nil {
		t.Fatal(err)
	}
	msg, part := p.next()
	if msg.Type != "cancel" || msg.ID != "c-1" || msg.Reason != "user asked" {
		t.Fatalf("cancel record %+v", msg)
	}
	if part != home {
		t.Fatalf("cancel on partition %d, start on %d", part, home)
	}
}

func TestValidation(t *testing.T) {
	c := cluster(t)
	cl := newClient(t, c)
	ctx := context.Background()
	cases := []struct {
		workflow, id, input string
		want                error
		msg                 string
	}{
		{"wc", "bad id", `{}`, ErrInvalidID, `"bad id"`},
		{"wc", "-x", `{}`, ErrInvalidID, ""},
		{"wc", strings.Repeat("a", 129), `{}`, ErrInvalidID, ""},
		{"", "r-1", `{}`, ErrInvalidWorkflow, ""},
		{"wc", "r-1", "{\n  \"a\": 1,\n  \"b\": }", ErrInvalidInput, "line 3, column 8"},
		{"wc", "r-1", `[1, 2]`, ErrInvalidInput, "an array"},
		{"wc", "r-1", `"text"`, ErrInvalidInput, "a string"},
		{"wc", "r-1", `null`, ErrInvalidInput, "null"},
		{"wc", "r-1", `{"a": 1} {"b": 2}`, ErrInvalidInput, "line 1, column 10"},
	}
	for _, tc := range cases {
		_, err := cl.Start(ctx, tc.workflow, tc.id, json.RawMessage(tc.input))
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Start(%q, %q, %q): %v; want %v mentioning %q", tc.workflow, tc.id, tc.input, err, tc.want, tc.msg)
		}
	}
	ids := map[string]bool{}
	for range 100 {
		id := NewID()
		if ids[id] || ValidateID(id) != nil || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("NewID %q: repeated, invalid, or not a version 4 UUID", id)
		}
		ids[id] = true
	}
}
