package bridge

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stepwise-run/stepwise/worker"
)

// acks records what was acknowledged, standing in for a RabbitMQ channel.
type acks struct {
	mu   sync.Mutex
	tags []uint64
}

func (a *acks) Ack(tag uint64, _ bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tags = append(a.tags, tag)
	return nil
}
func (a *acks) Nack(uint64, bool, bool) error { return nil }
func (a *acks) Reject(uint64, bool) error     { return nil }

func (a *acks) acked() []uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]uint64(nil), a.tags...)
}

func newTestBridge(t *testing.T) *Bridge {
	t.Helper()
	b, err := New(WithAMQPURL("amqp://unused/"), WithQueues("q"), WithReplyQueue("replies"),
		WithUnknownGrace(time.Minute), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func delivery(ch *acks, tag uint64, corr, body string) amqp.Delivery {
	return amqp.Delivery{Acknowledger: ch, DeliveryTag: tag, CorrelationId: corr, Body: []byte(body)}
}

// A reply answers the task waiting for its correlation id, and is
// acknowledged only once the task's result is produced.
func TestReplyAcknowledgedAfterResult(t *testing.T) {
	b := newTestBridge(t)
	ch := &acks{}
	c := &call{reply: make(chan *answer, 1)}
	if _, ok := b.wait("r-1:s", c); ok {
		t.Fatal("a reply was parked before any came")
	}
	b.onReply(delivery(ch, 7, "r-1:s", `{"n": 1}`))
	a := <-c.reply
	task := &worker.Task{Request: "r-1", Step: "s"}
	out, err := b.use(task, "q", "r-1:s", a)
	if err != nil || string(out) != `{"n": 1}` {
		t.Fatalf("use: %s, %v", out, err)
	}
	if got := ch.acked(); len(got) != 0 {
		t.Fatalf("acknowledged %v before the result was produced", got)
	}
	b.acknowledge(task)
	if got := ch.acked(); len(got) != 1 || got[0] != 7 {
		t.Fatalf("acknowledged %v after the result, want [7]", got)
	}
	// A second reply for the same task is a duplicate run's.
	b.onReply(delivery(ch, 8, "r-1:s", `{"n": 1}`))
	if got := ch.acked(); len(got) != 2 || b.Stats().Late.Load() != 1 {
		t.Fatalf("late reply: acked %v, late %d; want it dropped and counted", got, b.Stats().Late.Load())
	}
}

// Every task waiting for one correlation id (runs of the same step) gets
// the reply; it is acknowledged when the last has produced its result.
func TestReplySharedByWaitingRuns(t *testing.T) {
	b := newTestBridge(t)
	ch := &acks{}
	c1, c2 := &call{reply: make(chan *answer, 1)}, &call{reply: make(chan *answer, 1)}
	b.wait("r-1:s", c1)
	b.wait("r-1:s", c2)
	b.onReply(delivery(ch, 3, "r-1:s", `{}`))
	t1, t2 := &worker.Task{Attempt: 1}, &worker.Task{Attempt: 2}
	b.use(t1, "q", "r-1:s", <-c1.reply)
	b.use(t2, "q", "r-1:s", <-c2.reply)
	b.acknowledge(t1)
	if got := ch.acked(); len(got) != 0 {
		t.Fatalf("acknowledged %v with one run still producing", got)
	}
	b.acknowledge(t2)
	if got := ch.acked(); len(got) != 1 {
		t.Fatalf("acknowledged %v, want once", got)
	}
}

// A reply no task waits for is parked: a task of that correlation id that
// comes within the grace period takes it without being published; after
// the grace period it is dropped as unknown.
func TestUnknownReplyParked(t *testing.T) {
	b := newTestBridge(t)
	ch := &acks{}
	b.onReply(delivery(ch, 1, "r-2:s", `{"early": true}`))
	d, ok := b.wait("r-2:s", &call{reply: make(chan *answer, 1)})
	if !ok || string(d.Body) != `{"early": true}` {
		t.Fatalf("parked reply not handed to its task: %v %s", ok, d.Body)
	}
	b.onReply(delivery(ch, 2, "nobody:s", `{}`))
	b.dropUnknown(time.Now())
	if b.Stats().Unknown.Load() != 0 || len(ch.acked()) != 0 {
		t.Fatal("dropped before the grace period passed")
	}
	b.dropUnknown(time.Now().Add(time.Minute))
	if b.Stats().Unknown.Load() != 1 || len(ch.acked()) != 1 {
		t.Fatalf("after the grace period: unknown %d, acked %v; want 1 and [2]", b.Stats().Unknown.Load(), ch.acked())
	}
	b.onReply(delivery(ch, 3, "", `{}`))
	if b.Stats().Unknown.Load() != 2 {
		t.Fatal("a reply without a correlation id is not counted as unknown")
	}
}

// A garbage body fails the attempt with the reason and is counted.
func TestGarbageReplyFailsAttempt(t *testing.T) {
	b := newTestBridge(t)
	ch := &acks{}
	c := &call{reply: make(chan *answer, 1)}
	b.wait("r-3:s", c)
	b.onReply(delivery(ch, 1, "r-3:s", `not json`))
	task := &worker.Task{}
	out, err := b.use(task, "q", "r-3:s", <-c.reply)
	if err == nil || out != nil || b.Stats().Garbage.Load() != 1 {
		t.Fatalf("garbage reply: %s, %v, garbage %d", out, err, b.Stats().Garbage.Load())
	}
	b.acknowledge(task) // the error result was produced
	if len(ch.acked()) != 1 {
		t.Fatal("garbage reply not acknowledged after its error result")
	}
}

// A task whose context ends as its reply arrives still acknowledges the
// reply once its (error) result is produced.
func TestReplyRacingDeadline(t *testing.T) {
	b := newTestBridge(t)
	ch := &acks{}
	c := &call{reply: make(chan *answer, 1)}
	b.wait("r-4:s", c)
	b.onReply(delivery(ch, 9, "r-4:s", `{}`))
	if b.unwait("r-4:s", c) {
		t.Fatal("unwait found a call the reply had taken")
	}
	task := &worker.Task{}
	b.keep(task, <-c.reply)
	b.acknowledge(task)
	if got := ch.acked(); len(got) != 1 || got[0] != 9 {
		t.Fatalf("acked %v, want [9]", got)
	}
	c2 := &call{reply: make(chan *answer, 1)}
	b.wait("r-5:s", c2)
	if !b.unwait("r-5:s", c2) {
		t.Fatal("unwait did not find a waiting call")
	}
}
