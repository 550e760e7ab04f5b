package catchup

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stepwise-run/stepwise/internal/kfaketest"
)

// The rule on the in-process broker. TestRuleKafka (build tag integration)
// runs the same cases on a real Apache Kafka.
func TestRuleKfake(t *testing.T) {
	testRule(t, func(t *testing.T) (string, []string) {
		c := kfaketest.Cluster(t, kfake.SeedTopics(2, "state"))
		return "state", c.ListenAddrs()
	})
}

// testRule runs every case on a fresh two-partition topic from newTopic
// (its name and the brokers holding it).
func testRule(t *testing.T, newTopic func(t *testing.T) (topic string, brokers []string)) {
	t.Run("committed, aborted, tombstones, empty partition", func(t *testing.T) {
		topic, brokers := newTopic(t)
		h := newHarness(t, topic, brokers)
		h.txn(true, "a=1", "b=1")
		h.txn(false, "a=lost", "c=lost")
		h.txn(true, "b=")
		// The partition ends with an aborted transaction: depending on
		// the broker its records and markers are never handed over, so
		// only the fallback ends the read.
		h.txn(false, "d=lost")
		got := h.read(nil)
		if want := []string{"a=1", "b=1", "b="}; !slices.Equal(got, want) {
			t.Fatalf("read %q, want %q", got, want)
		}
	})

	t.Run("a dead member's transaction commits after the targets were taken", func(t *testing.T) {
		topic, brokers := newTopic(t)
		h := newHarness(t, topic, brokers)
		h.txn(true, "a=1")
		h.begin("r2=late")
		targets := h.targets()
		lsos := h.lastStable()
		h.end(true)
		if got, want := h.readTo(targets), []string{"a=1", "r2=late"}; !slices.Equal(got, want) {
			t.Fatalf("read to the high watermark: %q, want %q", got, want)
		}
		// The rule `stepwise get` used to follow, reading to the last
		// stable offset taken at the start, is over once a=1 and its
		// commit marker are read, before the late transaction is decided.
		early := NewTracker(topic, lsos)
		early.Observe(&kgo.Record{Topic: topic, Partition: 0, Offset: lsos[0] - 1})
		if !early.Done() {
			t.Fatalf("a read to the last stable offsets %v is not over at offset %d", lsos, lsos[0]-1)
		}
	})

	t.Run("a transaction that straddles the targets is read whole", func(t *testing.T) {
		topic, brokers := newTopic(t)
		h := newHarness(t, topic, brokers)
		h.txn(true, "a=1")
		h.begin("r2=below")
		targets := h.targets()
		h.produce("r3=past")
		h.end(true)
		if got, want := h.readTo(targets), []string{"a=1", "r2=below", "r3=past"}; !slices.Equal(got, want) {
			t.Fatalf("read %q, want %q: half of a committed transaction", got, want)
		}
	})

	for _, commit := range []bool{true, false} {
		t.Run(fmt.Sprintf("an open transaction is waited for (commit=%v)", commit), func(t *testing.T) {
			topic, brokers := newTopic(t)
			h := newHarness(t, topic, brokers)
			h.txn(true, "a=1")
			h.begin("r2=open")
			// Let the read go idle twice (so it has looked at the last
			// stable offset and found it short of the target) before
			// the transaction ends.
			var idle atomic.Int32
			twice := make(chan struct{})
			idlePoll = func() {
				if idle.Add(1) == 2 {
					close(twice)
				}
			}
			t.Cleanup(func() { idlePoll = nil })
			done := make(chan []string, 1)
			go func() { done <- h.read(nil) }()
			select {
			case <-twice:
			case got := <-done:
				t.Fatalf("the read ended while a transaction was open: %q", got)
			case <-time.After(30 * time.Second):
				t.Fatal("no idle poll in 30s")
			}
			h.end(commit)
			var got []string
			select {
			case got = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the read did not end after the transaction did")
			}
			want := []string{"a=1"}
			if commit {
				want = append(want, "r2=open")
			}
			if !slices.Equal(got, want) {
				t.Fatalf("read %q, want %q", got, want)
			}
		})
	}
}

// harness writes "key=value" records (value "" is a tombstone) to
// partition 0 of a topic in transactions and reads the topic by the rule.
type harness struct {
	t       *testing.T
	topic   string
	brokers []string
	tx      *kgo.Client
	adm     *kadm.Client
}

func newHarness(t *testing.T, topic string, brokers []string) *harness {
	h := &harness{t: t, topic: topic, brokers: brokers}
	h.tx = h.client(kgo.TransactionalID("catchup-test-"+topic), kgo.TransactionTimeout(time.Minute),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	h.adm = kadm.NewClient(h.client())
	return h
}

func (h *harness) client(opts ...kgo.Opt) *kgo.Client {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(h.brokers...)}, opts...)...)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(cl.Close)
	return cl
}

func (h *harness) begin(kvs ...string) {
	h.t.Helper()
	if err := h.tx.BeginTransaction(); err != nil {
		h.t.Fatal(err)
	}
	h.produce(kvs...)
}

// produce adds records to the open transaction.
func (h *harness) produce(kvs ...string) {
	h.t.Helper()
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		r := &kgo.Record{Topic: h.topic, Partition: 0, Key: []byte(k)}
		if v != "" {
			r.Value = []byte(v)
		}
		if err := h.tx.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) end(commit bool) {
	h.t.Helper()
	if err := h.tx.EndTransaction(context.Background(), kgo.TransactionEndTry(commit)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) txn(commit bool, kvs ...string) {
	h.t.Helper()
	h.begin(kvs...)
	h.end(commit)
}

func (h *harness) targets() map[int32]int64 {
	h.t.Helper()
	tg, err := Targets(context.Background(), h.adm, h.topic, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if tg[1] != 0 {
		h.t.Fatalf("empty partition 1 has a target: %v", tg)
	}
	return tg
}

func (h *harness) lastStable() map[int32]int64 {
	h.t.Helper()
	l, err := h.adm.ListCommittedOffsets(context.Background(), h.topic)
	if err == nil {
		err = l.Error()
	}
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[int32]int64{}
	l.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

func (h *harness) collect() (func(*kgo.Record), *[]string) {
	var got []string
	return func(r *kgo.Record) { got = append(got, string(r.Key)+"="+string(r.Value)) }, &got
}

func (h *harness) read(parts []int32) []string {
	fn, got := h.collect()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := Read(ctx, []kgo.Opt{kgo.SeedBrokers(h.brokers...)}, h.topic, parts, fn); err != nil {
		h.t.Error(err)
	}
	return *got
}

func (h *harness) readTo(targets map[int32]int64) []string {
	h.t.Helper()
	fn, got := h.collect()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := ReadTo(ctx, []kgo.Opt{kgo.SeedBrokers(h.brokers...)}, h.topic, targets, fn); err != nil {
		h.t.Fatal(err)
	}
	return *got
}

// The fallback: the last records below a target are gone (compacted away),
// so no record reaches target-1; the partition is complete once its last
// stable offset has passed the target and a poll delivered nothing.
func TestFallbackToLastStableOffset(t *testing.T) {
	c := kfaketest.Cluster(t, kfake.SeedTopics(1, "state"))
	cl := kfaketest.Client(t, c, kgo.DefaultProduceTopic("state"))
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(k), Value: []byte("1")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kfaketest.Admin(t, c)
	targets, err := Targets(ctx, adm, "state", nil)
	if err != nil || targets[0] != 3 {
		t.Fatalf("targets %v, %v", targets, err)
	}
	tr := NewTracker("state", targets)
	clock := time.Now()
	tr.now = func() time.Time { return clock }
	// Offsets 0 and 1 are delivered; 2 was compacted away.
	start := clock
	for off := range int64(2) {
		if !tr.Observe(&kgo.Record{Topic: "state", Partition: 0, Offset: off}) {
			t.Fatalf("offset %d not below the target", off)
		}
	}
	for poll, want := range []struct {
		after      time.Duration // since the records were delivered
		idle, done bool
	}{
		{0, false, false},           // the poll that delivered the records
		{PollWait, true, false},     // idle: the last stable offset (3) is looked up
		{2 * PollWait, true, false}, // idle, past it, but not for long: a slow fetch looks the same
		{FallbackIdle, true, true},  // idle for FallbackIdle: complete
	} {
		clock = clock.Add(want.after - clock.Sub(start))
		idle, err := tr.EndPoll(ctx, adm)
		if err != nil {
			t.Fatal(err)
		}
		if idle != want.idle || tr.Done() != want.done {
			t.Fatalf("poll %d: idle %v done %v, want %+v", poll, idle, tr.Done(), want)
		}
	}
	if f := tr.Finished(); !slices.Equal(f, []int32{0}) {
		t.Fatalf("finished %v", f)
	}
}

// A fetch that stalls is not the end of a partition: the first fetch of the
// read hangs for longer than a loaded machine or a broker that has just
// restarted might make it, while the last stable offset is already past
// the target. Every record must still be read. (With the fallback's idle
// time at 1 s, as it once was, the partition was declared complete with
// nothing read, and a processor restored it empty.)
func TestStalledFetchIsNotTheEnd(t *testing.T) {
	c := kfaketest.Cluster(t, kfake.SeedTopics(1, "state"))
	cl := kfaketest.Client(t, c, kgo.DefaultProduceTopic("state"))
	ctx := context.Background()
	want := []string{"a", "b", "c", "d", "e"}
	for _, k := range want {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(k), Value: []byte("1")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	const stall = 3 * time.Second
	var stalled atomic.Bool
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		if stalled.CompareAndSwap(false, true) {
			c.SleepControl(func() { time.Sleep(stall) })
		}
		return nil, nil, false // then answered as usual
	})
	var got []string
	began := time.Now()
	st, err := Read(ctx, []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, "state", nil, func(r *kgo.Record) {
		got = append(got, string(r.Key))
	})
	if err != nil {
		t.Fatal(err)
	}
	if !stalled.Load() {
		t.Fatal("no fetch was stalled")
	}
	if !slices.Equal(got, want) {
		t.Fatalf("read %v after a fetch stalled for %s, want %v", got, stall, want)
	}
	if len(st.Fallback) > 0 {
		t.Fatalf("partitions %v completed by the fallback", st.Fallback)
	}
	t.Logf("all %d records read in %s despite a %s stall", len(got), time.Since(began).Round(time.Millisecond), stall)
}
