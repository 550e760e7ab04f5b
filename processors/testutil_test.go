package processors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"log/slog"
	"maps"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/internal/kfaketest"
	"github.com/stepwise-run/stepwise/internal/testlog"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topics"
	"github.com/stepwise-run/stepwise/topology"
)

// threeSteps is the workflow of the end-to-end tests: a chain of three
// steps on three queues. The short timeout and backoff let a lost task be
// dispatched again within a test.
const threeSteps = `
workflows:
  - name: chain
    steps:
      - name: a
      - name: b
        depends: [a]
      - name: c
        depends: [b]
`

// env is an in-process Kafka (kfake) with the topic plan of a workflow
// set created.
type env struct {
	t       testing.TB
	cluster *kfake.Cluster
	conn    kconn.Config
	set     *topology.Set
	parts   int32
}

// newEnv starts a kfake cluster and creates the topics of yaml with parts
// partitions. The cleaner is off (see kfaketest.Cluster); compaction is
// covered by TestRetentionTombstonesAndCompaction and on real Kafka.
func newEnv(t testing.TB, yaml string, parts int32) *env {
	t.Helper()
	c := kfaketest.Cluster(t)
	set, err := topology.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cluster: c, set: set, parts: parts,
		conn: kconn.Config{Brokers: c.ListenAddrs(), Prefix: topology.DefaultPrefix}}
	adm := e.admin()
	if err := topics.Ensure(context.Background(), adm, set.Topics(e.conn.Prefix), parts, 1); err != nil {
		t.Fatal(err)
	}
	return e
}

// client returns a plain client of the cluster, closed with the test.
func (e *env) client(opts ...kgo.Opt) *kgo.Client {
	e.t.Helper()
	return kfaketest.Client(e.t, e.cluster, opts...)
}

func (e *env) admin() *kadm.Client { return kadm.NewClient(e.client()) }

// testLogger logs warnings and errors to the test log (set
// STEPWISE_TEST_LOG=debug to see everything).
func testLogger(t testing.TB) *slog.Logger { return testlog.New(t) }

// replica is a running processor.
type replica struct {
	p      *Processor
	cancel context.CancelFunc
	done   chan error
	dialer *killDialer
}

// startProcessor runs a processor with replica id id until the test ends
// or stop/kill is called.
func (e *env) startProcessor(id string, tweak ...func(*Config)) *replica {
	e.t.Helper()
	d := &killDialer{}
	cfg := Config{Conn: e.conn, Set: e.set, ReplicaID: id, Logger: testLogger(e.t),
		ExtraOpts: []kgo.Opt{kgo.Dialer(d.DialContext)}}
	for _, f := range tweak {
		f(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{p: p, cancel: cancel, done: make(chan error, 1), dialer: d}
	go func() { r.done <- p.Run(ctx) }()
	e.t.Cleanup(func() {
		r.cancel()
		if r.dialer.isDead() {
			return // a crashed replica's leftovers wind down on their own
		}
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			e.t.Errorf("processor %s did not stop", id)
		}
	})
	return r
}

// stop shuts the replica down gracefully and returns Run's error.
func (r *replica) stop(t testing.TB) error {
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("processor did not stop")
		return nil
	}
}

// kill cuts the replica off the network at once, as a crash would: no
// commit, no abort, no leaving the group. The broker learns of it only at
// the session and transaction timeouts.
func (r *replica) kill() {
	r.dialer.kill()
	r.cancel()
}

// killDialer dials normally until killed; then it closes every connection
// it made and refuses new ones.
type killDialer struct {
	mu     sync.Mutex
	dead   bool
	conns  []net.Conn
	dialer net.Dialer
}

func (d *killDialer) DialContext(ctx context.Context, network, host string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead {
		return nil, errors.New("killed")
	}
	c, err := d.dialer.DialContext(ctx, network, host)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *killDialer) isDead() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dead
}

func (d *killDialer) kill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dead = true
	for _, c := range d.conns {
		c.Close()
	}
}

// start produces starts of workflow with the given ids, partitioned by the
// key hash as clients do.
func (e *env) start(workflow string, ids ...string) {
	e.t.Helper()
	cl := e.client()
	var rs []*kgo.Record
	for _, id := range ids {
		v, _ := json.Marshal(map[string]any{"type": "start", "workflow": workflow, "id": id, "input": map[string]any{"id": id}})
		rs = append(rs, &kgo.Record{Topic: e.conn.Prefix.Requests(), Key: []byte(id), Value: v})
	}
	if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// produceRaw produces one raw record to the requests topic.
func (e *env) produceRaw(key string, value []byte) {
	e.t.Helper()
	r := &kgo.Record{Topic: e.conn.Prefix.Requests(), Key: []byte(key), Value: value}
	if err := e.client().ProduceSync(context.Background(), r).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return out
}

// task is a task as a worker sees it.
type task struct {
	request, step, instance string
	attempt                 int
	replyTopic              string
	replyPartition          int32
	input                   map[string]any
	record                  *kgo.Record
}

func parseTask(r *kgo.Record) task {
	tk := task{record: r}
	for _, h := range r.Headers {
		v := string(h.Value)
		switch h.Key {
		case schemas.HeaderRequest:
			tk.request = v
		case schemas.HeaderStep:
			tk.step = v
		case schemas.HeaderInstance:
			tk.instance = v
		case schemas.HeaderAttempt:
			tk.attempt, _ = strconv.Atoi(v)
		case schemas.HeaderReplyTopic:
			tk.replyTopic = v
		case schemas.HeaderReplyPartition:
			p, _ := strconv.Atoi(v)
			tk.replyPartition = int32(p)
		}
	}
	_ = json.Unmarshal(r.Value, &tk.input)
	return tk
}

// workerFunc decides what a worker does with a task: the records to reply
// with (nil: no reply), and whether to stop (as if it crashed: no commit).
type workerFunc func(tk task) (replies []*kgo.Record, crash bool)

// echo answers every task with its input plus "<step>": attempt.
func echo(tk task) ([]*kgo.Record, bool) {
	return []*kgo.Record{okResult(tk, nil)}, false
}

// okResult is a protocol result for tk: its input plus "<step>": attempt,
// or out when given.
func okResult(tk task, out map[string]any) *kgo.Record {
	if out == nil {
		out = maps.Clone(tk.input)
		if out == nil {
			out = map[string]any{}
		}
		out[tk.step] = tk.attempt
	}
	v, _ := json.Marshal(out)
	return &kgo.Record{
		Topic: tk.replyTopic, Partition: tk.replyPartition, Key: []byte(tk.request), Value: v,
		Headers: []kgo.RecordHeader{
			{Key: schemas.HeaderRequest, Value: []byte(tk.request)},
			{Key: schemas.HeaderStep, Value: []byte(tk.step)},
			{Key: schemas.HeaderAttempt, Value: []byte(strconv.Itoa(tk.attempt))},
			{Key: schemas.HeaderStatus, Value: []byte(schemas.StatusOK)},
		},
	}
}

// worker consumes every task topic of the set in group "test-workers",
// read_committed, and replies per fn to the partition the task names
// (manual partitioner: pitfall 5). It commits a task's offset only after
// its replies are acknowledged. It counts tasks per request/step/attempt.
type worker struct {
	mu    sync.Mutex
	tasks map[string]int // "request step attempt" => deliveries
	done  chan struct{}
}

func (e *env) startWorker(fn workerFunc) *worker {
	e.t.Helper()
	var topics []string
	for _, q := range e.set.Queues() {
		topics = append(topics, e.conn.Prefix.Tasks(q))
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(e.conn.Brokers...),
		kgo.ConsumerGroup("test-workers"),
		kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(10*time.Millisecond),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	)
	if err != nil {
		e.t.Fatal(err)
	}
	w := &worker{tasks: map[string]int{}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(w.done)
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			if fs.IsClientClosed() || ctx.Err() != nil {
				return
			}
			var replies []*kgo.Record
			var handled []*kgo.Record
			crashed := false
			fs.EachRecord(func(r *kgo.Record) {
				if crashed {
					return
				}
				tk := parseTask(r)
				w.mu.Lock()
				w.tasks[fmt.Sprintf("%s %s %d", tk.request, tk.step, tk.attempt)]++
				w.mu.Unlock()
				rs, crash := fn(tk)
				if crash {
					crashed = true
					return
				}
				replies = append(replies, rs...)
				handled = append(handled, r)
			})
			if len(replies) > 0 {
				if err := cl.ProduceSync(ctx, replies...).FirstErr(); err != nil {
					return // unacknowledged: do not commit
				}
			}
			if crashed {
				// Leave without committing what was not answered,
				// as a crashed worker would (its tasks are
				// redelivered to the group's other members).
				_ = cl.CommitRecords(ctx, handled...)
				return
			}
			if len(handled) > 0 {
				_ = cl.CommitRecords(ctx, handled...)
			}
		}
	}()
	e.t.Cleanup(func() { cancel(); <-w.done })
	return w
}

// deliveries returns how often each request/step/attempt was delivered.
func (w *worker) deliveries() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.tasks)
}

// completions reads the completions topic read_committed from the start
// and counts completions per request id.
type completions struct {
	mu    sync.Mutex
	count map[string]int
	last  map[string]schemas.Completion
	at    map[string]time.Time // when each was first seen
	part  map[string]int32     // home partition (the record's partition)
	next  map[int32]int64      // per partition: the offset after the last record read, markers included
	done  chan struct{}
	e     *env
}

func (e *env) watchCompletions() *completions {
	e.t.Helper()
	cl := e.client(
		kgo.ConsumeTopics(e.conn.Prefix.Completions()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // markers move next over every decided offset
		kgo.FetchMaxWait(10*time.Millisecond),
	)
	c := &completions{count: map[string]int{}, last: map[string]schemas.Completion{}, at: map[string]time.Time{}, part: map[string]int32{},
		next: map[int32]int64{}, done: make(chan struct{}), e: e}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(c.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				c.mu.Lock()
				c.next[r.Partition] = r.Offset + 1
				c.mu.Unlock()
				if r.Attrs.IsControl() {
					return
				}
				var comp schemas.Completion
				if err := json.Unmarshal(r.Value, &comp); err != nil {
					comp.Request = "(unreadable) " + string(r.Key)
				}
				c.mu.Lock()
				c.count[comp.Request]++
				c.last[comp.Request] = comp
				if _, ok := c.at[comp.Request]; !ok {
					c.at[comp.Request] = time.Now()
					c.part[comp.Request] = r.Partition
				}
				c.mu.Unlock()
			})
		}
	}()
	e.t.Cleanup(func() { cancel(); <-c.done })
	return c
}

// caughtUp waits until the watcher has read every partition up to its
// last stable offset of the moment it is called.
func (c *completions) caughtUp(t testing.TB, timeout time.Duration) {
	t.Helper()
	topic := c.e.conn.Prefix.Completions()
	lsos, err := c.e.admin().ListCommittedOffsets(context.Background(), topic)
	if err == nil {
		err = lsos.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for {
		behind := 0
		c.mu.Lock()
		lsos.Each(func(o kadm.ListedOffset) {
			if c.next[o.Partition] < o.Offset {
				behind++
			}
		})
		c.mu.Unlock()
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("completions: %d partitions not read to their last stable offset within %s", behind, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitCount waits until at least n completions were read, or fails the
// test at timeout.
func (c *completions) waitCount(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for c.completed() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d completions within %s, want %d", c.completed(), timeout, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// wait waits until every id has completed, or fails the test at timeout.
func (c *completions) wait(t testing.TB, ids []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		missing := 0
		for _, id := range ids {
			if c.count[id] == 0 {
				missing++
			}
		}
		c.mu.Unlock()
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests did not complete within %s", missing, len(ids), timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exactlyOnce checks that every id completed exactly once, with status
// want, and that no other request completed. It first reads the topic up
// to its last stable offset of now, so that a duplicate committed so far
// is counted.
func (c *completions) exactlyOnce(t testing.TB, ids []string, want schemas.CompletionStatus) {
	t.Helper()
	c.caughtUp(t, 20*time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	known := map[string]bool{}
	bad := 0
	for _, id := range ids {
		known[id] = true
		if n := c.count[id]; n != 1 {
			bad++
			if bad < 10 {
				t.Errorf("request %s completed %d times", id, n)
			}
		}
		if got := c.last[id].Status; got != want {
			bad++
			if bad < 10 {
				t.Errorf("request %s: status %s, want %s (error %+v)", id, got, want, c.last[id].Error)
			}
		}
	}
	for id := range c.count {
		if !known[id] {
			t.Errorf("unexpected completion of %q", id)
		}
	}
	if bad > 0 {
		t.Fatalf("%d problems among %d requests", bad, len(ids))
	}
}

func (c *completions) get(id string) (schemas.Completion, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last[id], c.count[id]
}

// count returns how many ids have completed.
func (c *completions) completed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.count)
}

// firstAfter returns, per home partition, the first time a request
// completed after t.
func (c *completions) firstAfter(t time.Time) map[int32]time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int32]time.Time{}
	for id, at := range c.at {
		p := c.part[id]
		if at.After(t) && (out[p].IsZero() || at.Before(out[p])) {
			out[p] = at
		}
	}
	return out
}
