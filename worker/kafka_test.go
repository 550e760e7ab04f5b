package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stepwise-run/stepwise/internal/kfaketest"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/schemas/schematest"
)

const (
	testTasks   = "stepwise.tasks.ocr"
	testResults = "stepwise.results"
	testGroup   = "stepwise.workers.ocr"
)

// env is an in-process broker with a task topic of two partitions and a
// results topic of twelve, plus clients to feed tasks and read results.
type env struct {
	t       testing.TB
	cluster *kfake.Cluster
	feed    *kgo.Client
	results *kgo.Client
	adm     *kadm.Client
}

func newEnv(t testing.TB) *env {
	t.Helper()
	c := kfaketest.Cluster(t, kfake.SeedTopics(2, testTasks), kfake.SeedTopics(12, testResults))
	e := &env{t: t, cluster: c}
	e.feed = e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	e.results = e.client(kgo.ConsumeTopics(testResults), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	e.adm = kadm.NewClient(e.client())
	return e
}

func (e *env) client(opts ...kgo.Opt) *kgo.Client {
	return kfaketest.Client(e.t, e.cluster, opts...)
}

// worker starts a worker on the broker; stop cancels it and returns Run's
// error.
func (e *env) worker(h Handler, opts []Option, hopts ...HandleOption) (stop func() error) {
	e.t.Helper()
	w, err := New(append([]Option{WithBrokers(e.cluster.ListenAddrs()...), WithCommitInterval(100 * time.Millisecond),
		WithKafkaOpts(kgo.FetchMaxWait(50 * time.Millisecond))}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	w.Handle("ocr", h, hopts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(20 * time.Second):
				runErr = errors.New("Run did not return within 20s of cancel")
			}
		})
		return runErr
	}
	e.t.Cleanup(func() { _ = stop() })
	return stop
}

// task produces a task record and returns its offset.
func (e *env) task(partition int32, key string, headers map[string]string, value []byte) int64 {
	e.t.Helper()
	r := &kgo.Record{Topic: testTasks, Partition: partition, Key: []byte(key), Value: value}
	for k, v := range headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	res := e.feed.ProduceSync(context.Background(), r)
	if err := res.FirstErr(); err != nil {
		e.t.Fatal(err)
	}
	return res[0].Record.Offset
}

// simpleTask produces a well-formed task of request id, replying to
// partition 0, and returns its offset.
func (e *env) simpleTask(partition int32, id string, input string) int64 {
	return e.task(partition, id, map[string]string{
		schemas.HeaderRequest: id, schemas.HeaderWorkflow: "wf", schemas.HeaderStep: "ocr",
		schemas.HeaderAttempt: "1", schemas.HeaderInstance: id,
		schemas.HeaderReplyTopic: testResults, schemas.HeaderReplyPartition: "0",
	}, []byte(input))
}

// next returns the next result record, or nil after wait.
func (e *env) next(wait time.Duration) *kgo.Record {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		fs := e.results.PollRecords(ctx, 1)
		if recs := fs.Records(); len(recs) > 0 {
			validResult(e.t, recs[0])
			return recs[0]
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// committed returns the group's committed offset of a task partition, or -1.
func (e *env) committed(partition int32) int64 {
	e.t.Helper()
	offs, err := e.adm.FetchOffsets(context.Background(), testGroup)
	if err != nil {
		e.t.Fatal(err)
	}
	if o, ok := offs.Lookup(testTasks, partition); ok && o.Err == nil {
		return o.At
	}
	return -1
}

// waitCommitted waits until the committed offset of partition reaches at.
func (e *env) waitCommitted(partition int32, at int64) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if e.committed(partition) >= at {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("committed offset of partition %d is %d, want %d", partition, e.committed(partition), at)
}

func headerMap(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		if _, dup := m[h.Key]; dup {
			m[h.Key] = "<repeated>"
			continue
		}
		m[h.Key] = string(h.Value)
	}
	return m
}

// TestVectors replays the protocol's conformance vectors: each task is fed
// to a worker whose handler behaves as the case says, and the result record
// must be exactly the expected one (or absent, with the task committed).
func TestVectors(t *testing.T) {
	vs, err := schemas.LoadWorkerVectors()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)

	var current atomic.Int32 // index of the case being replayed
	var calls atomic.Int32
	handler := func(ctx context.Context, task *Task) (json.RawMessage, error) {
		calls.Add(1)
		h := vs.Cases[current.Load()].Handler
		switch h.Kind {
		case "echo":
			return task.Input, nil
		case "return":
			return h.Value, nil
		case "return-nothing":
			return nil, nil
		case "raise":
			if h.Retryable {
				return nil, errors.New(h.Message)
			}
			return nil, Permanent(errors.New(h.Message))
		case "describe":
			_, hasDeadline := ctx.Deadline()
			return JSON(map[string]any{
				"request": task.Request, "workflow": task.Workflow, "step": task.Step, "attempt": task.Attempt,
				"instance": task.Instance, "hasDeadline": hasDeadline && !task.Deadline.IsZero(), "input": task.Input,
			})
		}
		return nil, fmt.Errorf("unknown handler kind %q", h.Kind)
	}
	stop := e.worker(handler, []Option{WithID(vs.WorkerID)})

	var offsets [2]int64
	for i, vc := range vs.Cases {
		ok := t.Run(vc.Name, func(t *testing.T) {
			e.t = t
			current.Store(int32(i))
			calls.Store(0)
			value := []byte(vc.Task.Value)
			if vc.Task.Raw != nil {
				value = []byte(*vc.Task.Raw)
			}
			off := e.task(vc.Task.Partition, vc.Task.Key, vc.Task.Headers, value)
			offsets[vc.Task.Partition] = off + 1
			if vc.Expect == nil {
				// Nothing to answer: the task is committed all the same.
				e.waitCommitted(vc.Task.Partition, off+1)
			} else {
				r := e.next(10 * time.Second)
				if r == nil {
					t.Fatalf("no result")
				}
				want := vc.Expect
				if r.Topic != want.Topic || r.Partition != want.Partition || string(r.Key) != want.Key {
					t.Errorf("result at %s[%d] key %q, want %s[%d] key %q", r.Topic, r.Partition, r.Key, want.Topic, want.Partition, want.Key)
				}
				if got := headerMap(r); !mapsEqual(got, want.Headers) {
					t.Errorf("headers %v, want %v", got, want.Headers)
				}
				if want.Value != nil {
					if !jsonEqual(t, r.Value, want.Value) {
						t.Errorf("value %s, want %s", r.Value, want.Value)
					}
				} else {
					var got struct {
						Message   *string `json:"message"`
						Retryable *bool   `json:"retryable"`
					}
					if err := json.Unmarshal(r.Value, &got); err != nil || got.Message == nil || got.Retryable == nil {
						t.Fatalf("error value %s is not {message, retryable}", r.Value)
					}
					if *got.Retryable != want.Error.Retryable || !strings.Contains(*got.Message, want.Error.MessageContains) {
						t.Errorf("error value %s, want retryable=%v and a message containing %q", r.Value, want.Error.Retryable, want.Error.MessageContains)
					}
				}
				e.waitCommitted(vc.Task.Partition, off+1)
			}
			called := vc.HandlerCalled == nil || *vc.HandlerCalled
			if n := calls.Load(); (n == 1) != called || n > 1 {
				t.Errorf("handler called %d times; want called=%v", n, called)
			}
		})
		if !ok {
			break
		}
	}
	e.t = t
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if r := e.next(200 * time.Millisecond); r != nil {
		t.Errorf("unexpected extra result %s headers %v", r.Value, headerMap(r))
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Errorf("not JSON: %s", a)
		return false
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// TestConcurrencyBounded: never more handlers of a queue at once than its
// Concurrency, and that many are used when tasks are waiting.
func TestConcurrencyBounded(t *testing.T) {
	e := newEnv(t)
	const limit, tasks = 3, 24
	for i := range tasks {
		e.simpleTask(int32(i%2), fmt.Sprintf("r-%d", i), `{}`)
	}
	var now, peak atomic.Int32
	stop := e.worker(func(ctx context.Context, task *Task) (json.RawMessage, error) {
		n := now.Add(1)
		defer now.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(30 * time.Millisecond)
		return nil, nil
	}, nil, Concurrency(limit))
	for i := range tasks {
		if r := e.next(10 * time.Second); r == nil {
			t.Fatalf("only %d of %d results", i, tasks)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p != limit {
		t.Fatalf("peak concurrency %d, want %d", p, limit)
	}
}

// TestNoCommitPastUnfinished: a task still running holds its partition's
// commit even when later tasks finished; when its worker dies before
// answering, the next worker of the group gets it (and the later ones)
// again. At-least-once, nothing lost.
func TestNoCommitPastUnfinished(t *testing.T) {
	e := newEnv(t)
	first := e.simpleTask(0, "slow", `{}`)
	e.simpleTask(0, "fast-1", `{}`)
	e.simpleTask(0, "fast-2", `{}`)

	started := make(chan struct{})
	var answered sync.Map
	stop := e.worker(func(ctx context.Context, task *Task) (json.RawMessage, error) {
		if task.Request == "slow" {
			close(started)
			<-ctx.Done() // stuck until the worker is shut down
			return nil, ctx.Err()
		}
		answered.Store(task.Request, true)
		return nil, nil
	}, []Option{WithDrainTimeout(100 * time.Millisecond)})

	wait(t, started)
	for range 2 {
		if r := e.next(10 * time.Second); r == nil {
			t.Fatal("fast tasks not answered")
		}
	}
	time.Sleep(500 * time.Millisecond) // five commit intervals
	if c := e.committed(0); c > first {
		t.Fatalf("committed offset %d passes the unfinished task at %d", c, first)
	}
	if err := stop(); err != nil { // the slow task is abandoned at the drain timeout
		t.Fatalf("Run: %v", err)
	}
	if c := e.committed(0); c > first {
		t.Fatalf("after the drain, committed offset %d passes the abandoned task at %d", c, first)
	}

	var again []string
	var mu sync.Mutex
	stop2 := e.worker(func(ctx context.Context, task *Task) (json.RawMessage, error) {
		mu.Lock()
		again = append(again, task.Request)
		mu.Unlock()
		return JSON(map[string]string{"by": "second"})
	}, nil)
	for range 3 {
		r := e.next(15 * time.Second)
		if r == nil {
			t.Fatal("tasks not redelivered to the second worker")
		}
		if headerMap(r)[schemas.HeaderStatus] != schemas.StatusOK {
			t.Fatalf("redelivered result %s", r.Value)
		}
	}
	e.waitCommitted(0, first+3)
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(again)
	if !slices.Equal(again, []string{"fast-1", "fast-2", "slow"}) {
		t.Fatalf("second worker ran %v, want the slow task and the two fast ones after it again", again)
	}
}

// TestPanicIsRetryable: a panicking handler yields a retryable error result
// and the worker goes on with the next task.
func TestPanicIsRetryable(t *testing.T) {
	e := newEnv(t)
	e.simpleTask(0, "boom", `{}`)
	e.simpleTask(0, "fine", `{}`)
	e.worker(func(ctx context.Context, task *Task) (json.RawMessage, error) {
		if task.Request == "boom" {
			var m map[string]int
			m["x"] = 1 // nil map write
		}
		return JSON(map[string]bool{"ok": true})
	}, nil)
	// Handlers run concurrently: the results may come in either order.
	got := map[string]*kgo.Record{}
	for range 2 {
		r := e.next(10 * time.Second)
		if r == nil {
			t.Fatalf("only %d results", len(got))
		}
		got[string(r.Key)] = r
	}
	r := got["boom"]
	if r == nil || headerMap(r)[schemas.HeaderStatus] != schemas.StatusError {
		t.Fatalf("panic result %v", r)
	}
	var v struct {
		Message   string `json:"message"`
		Retryable bool   `json:"retryable"`
	}
	if err := json.Unmarshal(r.Value, &v); err != nil || !v.Retryable || !strings.Contains(v.Message, "panic: assignment to entry in nil map") {
		t.Fatalf("panic result value %s", r.Value)
	}
	if r := got["fine"]; r == nil || headerMap(r)[schemas.HeaderStatus] != schemas.StatusOK {
		t.Fatalf("worker did not go on after a panic: %v", r)
	}
}

// TestGracefulDrain: cancelling Run lets running handlers finish, produces
// and commits their results, and starts nothing new.
func TestGracefulDrain(t *testing.T) {
	e := newEnv(t)
	for i := range 6 {
		e.simpleTask(0, fmt.Sprintf("r-%d", i), `{}`)
	}
	var started atomic.Int32
	release := make(chan struct{})
	stop := e.worker(func(ctx context.Context, task *Task) (json.RawMessage, error) {
		if started.Add(1) == 2 {
			close(release)
		}
		time.Sleep(300 * time.Millisecond)
		return nil, nil
	}, nil, Concurrency(2))
	wait(t, release)
	t0 := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 200*time.Millisecond {
		t.Fatalf("Run returned after %v, before the running handlers ended", d)
	}
	n := started.Load()
	if n != 2 {
		t.Fatalf("%d handlers started, want the 2 running at the cancel", n)
	}
	for range n {
		if r := e.next(5 * time.Second); r == nil || headerMap(r)[schemas.HeaderStatus] != schemas.StatusOK {
			t.Fatalf("drained task not answered: %v", r)
		}
	}
	if c := e.committed(0); c != int64(n) {
		t.Fatalf("committed %d after the drain, want %d", c, n)
	}
}

// TestHandleErrors: invalid registrations surface from Run.
func TestHandleErrors(t *testing.T) {
	w, err := New(WithBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(context.Background()); !errors.Is(err, ErrNoHandlers) {
		t.Fatalf("Run without handlers: %v", err)
	}
	w, _ = New(WithBrokers("127.0.0.1:1"))
	h := func(context.Context, *Task) (json.RawMessage, error) { return nil, nil }
	w.Handle("a", h)
	w.Handle("a", h)
	w.Handle("b", nil)
	w.Handle("c", h, Concurrency(0))
	err = w.Run(context.Background())
	for _, want := range []string{`"a" registered twice`, `nil handler for queue "b"`, `concurrency 0 for queue "c"`} {
		if !errors.Is(err, ErrBadHandle) || !strings.Contains(err.Error(), want) {
			t.Errorf("Run error %v; want it to say %s", err, want)
		}
	}
	if _, err := New(); !errors.Is(err, ErrNoBrokers) {
		t.Errorf("New without brokers: %v", err)
	}
}

func wait(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a handler to start")
	}
}

// TestRebalanceFinishesRunningTasks: when a second worker joins, the first
// one finishes the running task of the partition it gives up and commits
// it before handing the partition over, so no task runs twice.
func TestRebalanceFinishesRunningTasks(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	runs := map[string][]string{} // request → workers that ran it
	handler := func(name string) Handler {
		return func(ctx context.Context, task *Task) (json.RawMessage, error) {
			mu.Lock()
			runs[task.Request] = append(runs[task.Request], name)
			mu.Unlock()
			time.Sleep(700 * time.Millisecond)
			return nil, nil
		}
	}
	fast := []Option{WithKafkaOpts(kgo.HeartbeatInterval(100 * time.Millisecond))}
	e.worker(handler("first"), fast)
	e.simpleTask(0, "p0", `{}`)
	e.simpleTask(1, "p1", `{}`)
	// Both tasks are running in the first worker when the second joins.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(runs)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first worker did not start both tasks")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.worker(handler("second"), fast)
	for range 2 {
		if r := e.next(15 * time.Second); r == nil {
			t.Fatal("a running task was not answered")
		}
	}
	e.waitCommitted(0, 1)
	e.waitCommitted(1, 1)
	// Tasks after the rebalance are shared out and each runs once too.
	for i := range 6 {
		e.simpleTask(int32(i%2), fmt.Sprintf("after-%d", i), `{}`)
	}
	for range 6 {
		if r := e.next(15 * time.Second); r == nil {
			t.Fatal("a task after the rebalance was not answered")
		}
	}
	e.waitCommitted(0, 4)
	e.waitCommitted(1, 4)
	mu.Lock()
	defer mu.Unlock()
	workers := map[string]bool{}
	for req, by := range runs {
		if len(by) != 1 {
			t.Errorf("%s ran %d times (%v)", req, len(by), by)
		}
		workers[by[0]] = true
	}
	if len(runs) != 8 {
		t.Errorf("%d tasks ran, want 8", len(runs))
	}
	if !workers["second"] {
		t.Errorf("the second worker got no partition: %v", runs)
	}
}

// BenchmarkEcho measures tasks per second through one worker (echo
// handler, concurrency 64) on the in-process broker: feed b.N tasks over two
// partitions, wait for every result.
func BenchmarkEcho(b *testing.B) {
	e := newEnv(b)
	e.worker(func(ctx context.Context, task *Task) (json.RawMessage, error) { return task.Input, nil }, nil, Concurrency(64))
	headers := func(id string) []kgo.RecordHeader {
		return []kgo.RecordHeader{
			{Key: schemas.HeaderRequest, Value: []byte(id)}, {Key: schemas.HeaderWorkflow, Value: []byte("wf")},
			{Key: schemas.HeaderStep, Value: []byte("ocr")}, {Key: schemas.HeaderAttempt, Value: []byte("1")},
			{Key: schemas.HeaderInstance, Value: []byte(id)}, {Key: schemas.HeaderReplyTopic, Value: []byte(testResults)},
			{Key: schemas.HeaderReplyPartition, Value: []byte("0")},
		}
	}
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("r-%d", i)
		e.feed.Produce(context.Background(), &kgo.Record{Topic: testTasks, Partition: int32(i % 2), Key: []byte(id),
			Value: []byte(`{"page": 1}`), Headers: headers(id)}, nil)
	}
	got := 0
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for got < b.N && ctx.Err() == nil {
		got += len(e.results.PollFetches(ctx).Records())
	}
	b.StopTimer()
	if got < b.N {
		b.Fatalf("%d of %d results", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkRoundTrip measures one task at a time: produce it, wait for its
// result (the latency a step of a request adds in the worker and broker).
func BenchmarkRoundTrip(b *testing.B) {
	e := newEnv(b)
	e.worker(func(ctx context.Context, task *Task) (json.RawMessage, error) { return task.Input, nil }, nil)
	e.simpleTask(0, "warm-up", `{}`)
	if e.next(10*time.Second) == nil {
		b.Fatal("no result")
	}
	b.ResetTimer()
	for i := range b.N {
		e.simpleTask(int32(i%2), fmt.Sprintf("r-%d", i), `{}`)
		if e.next(10*time.Second) == nil {
			b.Fatal("no result")
		}
	}
}

// A task may name a reply partition added to the results topic after the
// worker's producer read its metadata: the worker waits for the partition
// to show up instead of dropping the result.
func TestResultToPartitionAddedLater(t *testing.T) {
	e := newEnv(t)
	e.worker(func(_ context.Context, t *Task) (json.RawMessage, error) { return t.Input, nil }, nil)
	// Warm up: the worker's producer learns the results topic (12 partitions).
	e.simpleTask(0, "warm", `{}`)
	if e.next(10*time.Second) == nil {
		t.Fatal("no result for the warm-up task")
	}
	if _, err := e.adm.CreatePartitions(context.Background(), 2, testResults); err != nil {
		t.Fatal(err)
	}
	e.task(0, "late", map[string]string{
		schemas.HeaderRequest: "late", schemas.HeaderWorkflow: "wf", schemas.HeaderStep: "ocr",
		schemas.HeaderAttempt: "1", schemas.HeaderInstance: "late",
		schemas.HeaderReplyTopic: testResults, schemas.HeaderReplyPartition: "13",
	}, []byte(`{"n":1}`))
	// A fresh reader: the env's one has not seen the new partitions.
	rd := e.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{testResults: {13: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var r *kgo.Record
	for r == nil && ctx.Err() == nil {
		if recs := rd.PollRecords(ctx, 1).Records(); len(recs) > 0 {
			r = recs[0]
		}
	}
	if r == nil {
		t.Fatal("the result for the new partition never arrived")
	}
	if string(r.Key) != "late" {
		t.Fatalf("result key %q, want late", r.Key)
	}
}

// TestAfterResult: the AfterResult callback runs once per produced result,
// after the broker acknowledged it, with the task the handler ran.
func TestAfterResult(t *testing.T) {
	e := newEnv(t)
	e.simpleTask(0, "r-1", `{}`)
	answered := make(chan *Task, 2)
	e.worker(func(ctx context.Context, task *Task) (json.RawMessage, error) {
		return JSON(map[string]bool{"ok": true})
	}, nil, AfterResult(func(task *Task) { answered <- task }))
	r := e.next(10 * time.Second)
	if r == nil {
		t.Fatal("no result")
	}
	select {
	case task := <-answered:
		if task.Request != "r-1" || task.Step != "ocr" || task.Attempt != 1 {
			t.Fatalf("AfterResult got %+v", task)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AfterResult not called after the result was produced")
	}
	select {
	case task := <-answered:
		t.Fatalf("AfterResult called twice (%+v)", task)
	case <-time.After(300 * time.Millisecond):
	}
}

// validResult checks the value of a result the worker wrote against the
// protocol's schemas, by its status. (Headers are copied from the task, so
// they are as good as the task's; TestVectors compares them with the
// vectors, which schemas' tests check.)
func validResult(t testing.TB, r *kgo.Record) {
	t.Helper()
	h := map[string]string{}
	for _, kv := range r.Headers {
		h[kv.Key] = string(kv.Value)
	}
	schema := "result.schema.json"
	if h[schemas.HeaderStatus] == schemas.StatusError {
		schema = "result-error.schema.json"
	}
	if h[schemas.HeaderStatus] == schemas.StatusHeartbeat {
		schema = "heartbeat.schema.json"
	}
	schematest.Valid(t, schema, r.Value)
}

// A result the broker refuses for a reason that is not the record's own
// (here a policy violation, which the Kafka client does not retry) is sent
// again, not dropped: a dropped result strands its request for good.
func TestRefusedResultIsRetried(t *testing.T) {
	e := newEnv(t)
	e.simpleTask(0, "refused", `{"n":1}`)
	var refused atomic.Int32
	e.cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		if refused.Load() > 0 {
			return nil, nil, false
		}
		refused.Add(1)
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.PolicyViolation.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	e.worker(func(_ context.Context, t *Task) (json.RawMessage, error) { return t.Input, nil }, nil)
	r := e.next(20 * time.Second)
	if refused.Load() == 0 {
		t.Fatal("no produce was refused")
	}
	if r == nil {
		t.Fatal("the refused result was never sent again")
	}
	if string(r.Key) != "refused" {
		t.Fatalf("result key %q, want refused", r.Key)
	}
}
