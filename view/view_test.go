package view

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/definitions"
	"github.com/stepwise-run/stepwise/internal/devbroker"
	"github.com/stepwise-run/stepwise/internal/testlog"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/statekey"
	"github.com/stepwise-run/stepwise/topology"
)

// TestViewCatchUpAndMemory fills a state topic with finished requests and
// running ones with live fan-out children, ends it with an aborted
// transaction (whose records are never delivered), and checks that a view
// started afterwards catches up to exactly that content. It reports the
// catch-up time and the heap the view holds per request.
func TestViewCatchUpAndMemory(t *testing.T) {
	const finished, running, children = 20000, 1000, 5
	log := testlog.New(t)
	b, err := devbroker.Start(devbroker.WithAddr("127.0.0.1:0"), devbroker.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	set := mustParse(t, testYAML)
	conn := b.Conn(topology.DefaultPrefix)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := b.CreateTopics(ctx, set, conn.Prefix, 3); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	now := time.Now().UTC()
	out := json.RawMessage(`{"text":"` + strings.Repeat("w", 150) + `","n":3}`)
	var recs []*kgo.Record
	put := func(r *schemas.Record) {
		recs = append(recs, &kgo.Record{Topic: conn.Prefix.State(), Partition: r.Partition,
			Key: []byte(statekey.Format(r.Request, r.Path)), Value: schemas.EncodeRecord(r)})
	}
	step := func(st schemas.StepStatus) *schemas.StepState {
		s := &schemas.StepState{Status: st, Attempt: 1, Started: now, Ended: now}
		if st == schemas.StepSucceeded {
			s.Output = out
		}
		return s
	}
	for i := range finished {
		id := fmt.Sprintf("done-%05d", i)
		put(&schemas.Record{Request: id, Workflow: "chain", Partition: int32(i % 3), Status: schemas.StatusSucceeded,
			Input: json.RawMessage(`{"n":3}`), Output: out, Created: now, Updated: now, ExpireAt: now.Add(time.Hour),
			Steps: map[string]*schemas.StepState{"a": step(schemas.StepSucceeded), "fan": {Status: schemas.StepSucceeded, Children: 3, Done: 3},
				"b": step(schemas.StepSucceeded)}})
	}
	for i := range running {
		id := fmt.Sprintf("run-%04d", i)
		p := int32(i % 3)
		put(&schemas.Record{Request: id, Workflow: "chain", Partition: p, Status: schemas.Running,
			Input: json.RawMessage(`{"n":5}`), Created: now, Updated: now,
			Steps: map[string]*schemas.StepState{"a": step(schemas.StepSucceeded), "fan": {Status: schemas.StepRunning, Children: children, Done: 1}}})
		for c := range children {
			st := map[string]*schemas.StepState{"x": step(schemas.StepSucceeded), "y": step(schemas.StepRunning)}
			status := schemas.Running
			if c == 0 {
				st, status = nil, schemas.StatusSucceeded
			}
			put(&schemas.Record{Request: id, Workflow: "chain", Path: fmt.Sprintf("fan[%d]", c), Task: "per-item", Partition: p,
				Status: status, Input: json.RawMessage(fmt.Sprintf(`{"item":{"i":%d}}`, c)), Created: now, Updated: now, Steps: st})
		}
	}
	// One finished request forgotten again: a tombstone.
	recs = append(recs, &kgo.Record{Topic: conn.Prefix.State(), Partition: 0, Key: []byte("done-00000")})
	cl2, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	start := time.Now()
	if err := cl2.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d state records in %s", len(recs), time.Since(start).Round(time.Millisecond))

	// An aborted transaction at the end of every partition: its records
	// and markers are never handed over, yet catch-up must end.
	tx, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.TransactionalID("aborter"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		ghost := schemas.EncodeRecord(&schemas.Record{Request: fmt.Sprintf("ghost-%d", p), Workflow: "chain", Partition: p, Status: schemas.Running, Created: now})
		if err := tx.ProduceSync(ctx, &kgo.Record{Topic: conn.Prefix.State(), Partition: p, Key: []byte(fmt.Sprintf("ghost-%d", p)), Value: ghost}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := New(conn, WithLogger(log))
	vctx, vcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- v.Run(vctx) }()
	select {
	case <-v.Ready():
	case <-time.After(60 * time.Second):
		t.Fatalf("view not caught up: %+v", v.Stats())
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := v.Stats()
	if st.Requests != finished-1+running || st.Children != running*children {
		t.Errorf("view holds %d requests and %d children, want %d and %d", st.Requests, st.Children, finished-1+running, running*children)
	}
	for p := range 3 {
		if r := v.Get(fmt.Sprintf("ghost-%d", p)); r != nil {
			t.Errorf("an aborted record is in the view: %+v", r)
		}
	}
	if v.Get("done-00000") != nil || v.Get("done-00001") == nil {
		t.Errorf("tombstone not applied")
	}
	// Progress of a live fan-out from the records read.
	s := BuildStatus(v.Get("run-0001"), definitions.FromSet(set), StatusOptions{PreviewLimit: PreviewLimit, Instances: 100})
	if n := s.Nodes["fan/x"]; n.Total != children || n.Succeeded != children {
		t.Errorf("fan/x of a running request: %+v", n)
	}
	if n := s.Nodes["fan/y"]; n.Running != children-1 || n.Succeeded != 1 || n.Status != "running" {
		t.Errorf("fan/y of a running request: %+v", n)
	}
	if s.InstancesTotal != children || len(s.Instances) != children || s.Instances[0].Path != "fan[0]" {
		t.Errorf("instances %d %+v", s.InstancesTotal, s.Instances)
	}
	heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	t.Logf("catch-up: %d records in %.0f ms (%.0f records/s); heap held: %.1f MiB, %.0f bytes per request (%d requests, %d children); record bytes per request %.0f",
		st.CatchUpRecords, st.CatchUpMillis, float64(st.CatchUpRecords)/(st.CatchUpMillis/1000), heap/(1<<20), heap/float64(st.Requests),
		st.Requests, st.Children, float64(st.RecordBytes)/float64(st.Requests))
	if st.CatchUpRecords != uint64(len(recs)) {
		t.Errorf("catch-up read %d records (%d of them tombstones), want %d", st.CatchUpRecords, st.Tombstones, len(recs))
	}
	vcancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestFailureInsideFanOut(t *testing.T) {
	// A child's failure names a step path; the child records are gone
	// with the request, so the DAG node is found from the path.
	r := &Request{id: "r", root: &schemas.Record{Request: "r", Workflow: "chain", Status: schemas.StatusFailed,
		Error: &schemas.Failure{Step: "fan[1]/y", Attempt: 2, Message: "bad item"},
		Steps: map[string]*schemas.StepState{
			"a":   {Status: schemas.StepSucceeded, Attempt: 1},
			"fan": {Status: schemas.StepRunning, Children: 3, Done: 1},
		}}}
	set := mustParse(t, testYAML)
	nodes := progress(r, set.Lookup("chain"))
	for id, want := range map[string]string{"a": "succeeded", "fan": "failed", "fan/y": "failed", "fan/x": "pending", "b": "pending"} {
		if nodes[id].Status != want {
			t.Errorf("node %s: %+v, want %s", id, nodes[id], want)
		}
	}
	if nodes["fan/y"].Error != "bad item" {
		t.Errorf("fan/y error %q", nodes["fan/y"].Error)
	}
}

func TestBound(t *testing.T) {
	if p := bound(nil, 10, "u"); p != nil {
		t.Errorf("empty payload: %+v", p)
	}
	if p := bound(json.RawMessage(`{"a":1}`), 10, "u"); p.Truncated || string(p.Value) != `{"a":1}` || p.Size != 7 || p.URL != "u" {
		t.Errorf("small payload: %+v", p)
	}
	// "é" is two bytes: a cut never splits it.
	p := bound(json.RawMessage(`{"s":"ééééé"}`), 8, "u")
	if !p.Truncated || p.Value != nil || p.Preview != `{"s":"é` || p.Size != 18 {
		t.Errorf("cut payload: %+v (%q)", p, p.Preview)
	}
}

func TestRememberedWidths(t *testing.T) {
	// A nested child that finished lost its steps; the view remembers
	// how many grandchildren it had, so progress stays whole.
	set := mustParse(t, `
workflows:
  - name: nest
    steps:
      - name: docs
        task: doc
    tasks:
      - name: doc
        itemListKey: docs
        steps:
          - name: pages
            task: page
      - name: page
        itemListKey: pages
        steps:
          - name: ocr
`)
	v := New(testConn())
	now := time.Now()
	v.apply("r", "", &schemas.Record{Request: "r", Workflow: "nest", Status: schemas.Running, Created: now,
		Steps: map[string]*schemas.StepState{"docs": {Status: schemas.StepRunning, Children: 1}}}, 100)
	v.apply("r", "docs[0]", &schemas.Record{Request: "r", Path: "docs[0]", Status: schemas.Running,
		Steps: map[string]*schemas.StepState{"pages": {Status: schemas.StepRunning, Children: 4, Done: 4}}}, 50)
	v.apply("r", "docs[0]", &schemas.Record{Request: "r", Path: "docs[0]", Status: schemas.StatusSucceeded}, 40)
	r := v.Get("r")
	if r.widths["docs[0]/pages"] != 4 || r.bytes != 140 {
		t.Fatalf("widths %v, bytes %d", r.widths, r.bytes)
	}
	nodes := progress(r, set.Lookup("nest"))
	if n := nodes["docs/pages/ocr"]; n.Total != 4 || n.Succeeded != 4 || n.Status != "succeeded" {
		t.Errorf("docs/pages/ocr %+v", n)
	}
	if n := nodes["docs/pages"]; n.Children != 4 || n.ChildrenDone != 4 {
		t.Errorf("docs/pages %+v", n)
	}
	v.apply("r", "docs[0]", nil, 0)
	if r := v.Get("r"); len(r.children) != 0 || r.bytes != 100 {
		t.Errorf("after the tombstone: %d children, %d bytes", len(r.children), r.bytes)
	}
	v.apply("r", "", nil, 0)
	if v.Get("r") != nil {
		t.Errorf("root tombstone left the request")
	}
}

// The processors count finished children in a progress record, not in the
// parent; the view folds the count into the parent's step state, also
// when the parent is rewritten while the fan-out runs.
func TestFanoutProgressRecords(t *testing.T) {
	v := New(testConn())
	now := time.Now()
	root := func(a schemas.StepStatus) *schemas.Record {
		return &schemas.Record{Request: "r", Workflow: "chain", Status: schemas.Running, Created: now,
			Steps: map[string]*schemas.StepState{"a": {Status: a}, "fan": {Status: schemas.StepRunning, Children: 3}}}
	}
	v.apply("r", "", root(schemas.StepRunning), 100)
	v.apply("r", "fan", &schemas.Record{Kind: schemas.KindFanout, Request: "r", Path: "fan", Status: schemas.Running, Children: 3, Done: 2}, 60)
	if got := v.Get("r").root.Steps["fan"].Done; got != 2 {
		t.Fatalf("done after the progress record = %d, want 2", got)
	}
	v.apply("r", "", root(schemas.StepSucceeded), 100) // the parent rewritten mid-fan-out
	if got := v.Get("r").root.Steps["fan"].Done; got != 2 {
		t.Fatalf("done after the parent was rewritten = %d, want 2", got)
	}
	if n := len(v.Get("r").children); n != 0 {
		t.Fatalf("a progress record was taken for a child: %d children", n)
	}
	v.apply("r", "fan", nil, 0)
	if p := v.Get("r").progress; len(p) != 0 {
		t.Fatalf("progress after the tombstone: %v", p)
	}
}

// BenchmarkViewFanoutChild: one child record of a request that already has
// 10,000 children. Constant per child (the view changes requests in place;
// copying children on every change cost the square of the width).
func BenchmarkViewFanoutChild(b *testing.B) {
	v := New(testConn())
	now := time.Now()
	v.apply("r", "", &schemas.Record{Request: "r", Workflow: "w", Status: schemas.Running, Created: now,
		Steps: map[string]*schemas.StepState{"fan": {Status: schemas.StepRunning, Children: 10000}}}, 100)
	for i := range 10000 {
		v.apply("r", fmt.Sprintf("fan[%d]", i), &schemas.Record{Request: "r", Path: fmt.Sprintf("fan[%d]", i), Status: schemas.Running}, 50)
	}
	done := &schemas.Record{Request: "r", Status: schemas.StatusSucceeded}
	for i := 0; b.Loop(); i++ {
		v.apply("r", fmt.Sprintf("fan[%d]", i%10000), done, 40)
	}
}

// testYAML has a fan-out between two plain steps.
const testYAML = `
workflows:
  - name: chain
    steps:
      - name: a
      - name: fan
        task: per-item
        depends: [a]
      - name: b
        depends: [fan]
    tasks:
      - name: per-item
        itemListKey: items
        steps:
          - name: x
          - name: y
            depends: [x]
`

func mustParse(t *testing.T, yaml string) *topology.Set {
	t.Helper()
	set, err := topology.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// testConn is a connection that is never dialled (views fed by hand).
func testConn() kconn.Config {
	return kconn.Config{Brokers: []string{"127.0.0.1:1"}, Prefix: topology.DefaultPrefix}
}
