package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stepwise-run/stepwise/internal/logkey"
	"github.com/stepwise-run/stepwise/metrics"
	"github.com/stepwise-run/stepwise/worker"
)

// Log keys; those shared with the other parts come from internal/logkey.
const (
	logError       = logkey.Error
	logQueue       = logkey.Queue
	logCorrelation = "correlation_id"
	logReplyQueue  = "reply_queue"
	logGeneration  = "generation"
	logWait        = "wait"
	logRequest     = logkey.Request
	logWorkflow    = logkey.Workflow
	logStep        = logkey.Step
	logAttempt     = logkey.Attempt
	logOutcome     = "outcome"
	logVHost       = "vhost"
)

// Stats counts what the bridge did. Every reply that is not used as a
// step's output is counted under one of the reply counters.
type Stats struct {
	Published   atomic.Int64 // tasks published and confirmed, republished ones included
	Republished atomic.Int64 // tasks published again after a reconnect
	Unconfirmed atomic.Int64 // publishes RabbitMQ nacked or lost before confirming (published again)
	Replies     atomic.Int64 // replies matched to a waiting task
	Empty       atomic.Int64 // of those, empty (or null) bodies, taken as {}
	Garbage     atomic.Int64 // of those, bodies that are not a JSON object: the attempt fails
	Unknown     atomic.Int64 // replies whose correlation id no task here waits for, or that have none
	Late        atomic.Int64 // replies for a task already answered (a duplicate run)
	Reconnects  atomic.Int64 // connections to RabbitMQ lost
}

// Counts returns the counters as the metrics package exports them.
func (s *Stats) Counts() metrics.BridgeCounts {
	return metrics.BridgeCounts{
		Published: s.Published.Load(), Republished: s.Republished.Load(), Unconfirmed: s.Unconfirmed.Load(),
		Replies: s.Replies.Load(), Empty: s.Empty.Load(), Garbage: s.Garbage.Load(),
		Unknown: s.Unknown.Load(), Late: s.Late.Load(), Reconnects: s.Reconnects.Load(),
	}
}

// Snapshot returns the counters by name, for logs and tests.
func (s *Stats) Snapshot() map[string]int64 {
	return map[string]int64{
		"published": s.Published.Load(), "republished": s.Republished.Load(), "unconfirmed": s.Unconfirmed.Load(),
		"replies": s.Replies.Load(), "empty": s.Empty.Load(), "garbage": s.Garbage.Load(),
		"unknown": s.Unknown.Load(), "late": s.Late.Load(), "reconnects": s.Reconnects.Load(),
	}
}

// Bridge relays tasks of some queues to RabbitMQ and their replies back.
// Create it with New, run it with Run.
type Bridge struct {
	cfg      config
	stats    Stats
	sessions map[string]*session // by vhost ("": the URL's)

	mu struct {
		sync.Mutex
		waiting  map[string][]*call       // by correlation id
		answered map[string]time.Time     // correlation ids answered recently, to tell late replies from unknown ones
		acks     map[*worker.Task]*answer // replies to acknowledge once the task's result is produced
		// parked holds replies no task waited for when they came, for
		// the grace period: after a restart, replies to the previous
		// incarnation's tasks arrive before Kafka delivers those tasks
		// again, and using them saves a second run.
		parked map[string]parked
	}
}

type parked struct {
	d  amqp.Delivery
	at time.Time
}

// call is one task waiting for its reply.
type call struct {
	reply chan *answer // gets at most one
}

// answer is one reply delivery, shared by every call it answered; it is
// acknowledged when the last of them has produced its result.
type answer struct {
	d       amqp.Delivery
	pending atomic.Int32
}

// answeredMemory is how long a correlation id is remembered as answered.
const answeredMemory = 10 * time.Minute

// New checks the options and returns a Bridge.
func New(opts ...Option) (*Bridge, error) {
	cfg := defaults()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	switch {
	case cfg.url == "":
		return nil, errors.New("stepwise bridge: no AMQP URL (WithAMQPURL)")
	case len(cfg.queues) == 0:
		return nil, errors.New("stepwise bridge: no queues to bridge (WithQueues)")
	}
	if cfg.replyQueue == "" {
		host, _ := os.Hostname()
		cfg.replyQueue = fmt.Sprintf("%sbridge.replies.%s-%d", cfg.prefix, host, os.Getpid())
	}
	b := &Bridge{cfg: cfg}
	b.mu.waiting = map[string][]*call{}
	b.mu.answered = map[string]time.Time{}
	b.mu.acks = map[*worker.Task]*answer{}
	b.mu.parked = map[string]parked{}
	b.sessions = map[string]*session{}
	for _, q := range cfg.queues {
		vhost := b.route(q).VHost
		if b.sessions[vhost] == nil {
			b.sessions[vhost] = newSession(cfg.url, vhost, cfg.replyQueue, 2*cfg.concurrency*len(cfg.queues), cfg.backoff, cfg.logger, &b.stats, b.onReply)
		}
	}
	return b, nil
}

// route returns where the tasks of queue go.
func (b *Bridge) route(queue string) Route {
	if r, ok := b.cfg.routes[queue]; ok {
		return r
	}
	return Route{Queue: queue}
}

// Stats returns the bridge's counters.
func (b *Bridge) Stats() *Stats { return &b.stats }

// Ready reports nil while the bridge is connected to RabbitMQ, else why
// not (for /readyz).
func (b *Bridge) Ready() error {
	for vhost, s := range b.sessions {
		if err := s.ready(); err != nil {
			if vhost != "" {
				return fmt.Errorf("vhost %s: %w", vhost, err)
			}
			return err
		}
	}
	return nil
}

// ReplyQueue returns the name of this replica's reply queue.
func (b *Bridge) ReplyQueue() string { return b.cfg.replyQueue }

// Run serves until ctx ends, then drains as a worker does (tasks still
// waiting for a reply after the drain timeout run again elsewhere). It
// returns an error only when the Kafka side cannot run.
func (b *Bridge) Run(ctx context.Context) error {
	w, err := worker.New(append(b.cfg.workerOpts, worker.WithLogger(b.cfg.logger))...)
	if err != nil {
		return err
	}
	for _, q := range b.cfg.queues {
		w.Handle(q, b.handler(q), worker.Concurrency(b.cfg.concurrency), worker.AfterResult(b.acknowledge))
	}
	sessCtx, stopSession := context.WithCancel(context.WithoutCancel(ctx))
	sessDone := make(chan struct{})
	var sessions sync.WaitGroup
	for _, s := range b.sessions {
		sessions.Go(func() { s.run(sessCtx) })
	}
	go func() { sessions.Wait(); close(sessDone) }()
	ticker := time.NewTicker(b.cfg.statsEvery)
	defer ticker.Stop()
	sweep := time.NewTicker(max(b.cfg.grace/4, 10*time.Millisecond))
	defer sweep.Stop()
	go func() {
		for {
			select {
			case <-ticker.C:
				b.logStats("bridge counters")
			case now := <-sweep.C:
				b.dropUnknown(now)
			case <-sessDone:
				return
			}
		}
	}()
	b.cfg.logger.Info("bridge started", slog.Any("queues", b.cfg.queues), slog.String(logReplyQueue, b.cfg.replyQueue))
	err = w.Run(ctx)
	// The worker has drained: every reply it could use was acknowledged.
	stopSession()
	<-sessDone
	b.logStats("bridge stopped")
	return err
}

func (b *Bridge) logStats(msg string) {
	snap := b.stats.Snapshot()
	attrs := []any{}
	for _, k := range slices.Sorted(maps.Keys(snap)) {
		attrs = append(attrs, slog.Int64(k, snap[k]))
	}
	b.cfg.logger.Info(msg, attrs...)
}

// handler publishes each task and waits for its reply; the worker SDK
// produces what it returns as the result.
func (b *Bridge) handler(queue string) worker.Handler {
	route := b.route(queue)
	sess := b.sessions[route.VHost]
	return func(ctx context.Context, t *worker.Task) (json.RawMessage, error) {
		instance := t.Instance
		if instance == "" {
			instance = t.Request
		}
		corr := CorrelationID(instance, t.Step)
		c := &call{reply: make(chan *answer, 1)}
		if d, ok := b.wait(corr, c); ok {
			// Answered before it was asked here: a reply to the same
			// task published by this replica's previous incarnation.
			a := &answer{d: d}
			a.pending.Store(1)
			return b.use(t, queue, corr, a)
		}
		defer b.unwait(corr, c) // false once a reply took it: nothing to undo
		for published := false; ; published = true {
			lost, err := sess.publish(ctx, route.Queue, corr, t.Input)
			if err != nil {
				return nil, fmt.Errorf("stepwise bridge: task not delivered to AMQP queue %s: %w", route.Queue, err)
			}
			b.stats.Published.Add(1)
			if published {
				b.stats.Republished.Add(1)
			}
			select {
			case a := <-c.reply:
				return b.use(t, queue, corr, a)
			case <-lost:
				// The reply may still come (the reply queue is durable),
				// but a task lost with the connection would never be
				// answered: publish again, at the risk of a duplicate run.
			case <-ctx.Done():
				if !b.unwait(corr, c) {
					// A reply took this call just now: acknowledge it with
					// the error result, as any reply that was used.
					b.keep(t, <-c.reply)
				}
				return nil, fmt.Errorf("stepwise bridge: no reply from AMQP queue %s: %w", route.Queue, ctx.Err())
			}
		}
	}
}

// use turns a reply into the handler's outcome and keeps the delivery to
// acknowledge after the result is produced.
func (b *Bridge) use(t *worker.Task, queue, corr string, a *answer) (json.RawMessage, error) {
	b.keep(t, a)
	b.stats.Replies.Add(1)
	out, empty, err := decodeReply(a.d.Body)
	switch {
	case err != nil:
		b.stats.Garbage.Add(1)
		b.cfg.logger.Warn("unusable reply; the attempt fails", slog.String(logQueue, queue), slog.String(logCorrelation, corr),
			slog.String(logRequest, t.Request), slog.String(logWorkflow, t.Workflow), slog.String(logStep, t.Step), slog.Int(logAttempt, t.Attempt), slog.String(logError, err.Error()))
		return nil, err
	case empty:
		b.stats.Empty.Add(1)
		b.cfg.logger.Debug("empty reply taken as {}", slog.String(logQueue, queue), slog.String(logCorrelation, corr))
	}
	return out, nil
}

// keep holds a reply until t's result is produced.
func (b *Bridge) keep(t *worker.Task, a *answer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.acks[t] = a
}

// acknowledge is called once a task's result is safe in Kafka.
func (b *Bridge) acknowledge(t *worker.Task) {
	b.mu.Lock()
	a := b.mu.acks[t]
	delete(b.mu.acks, t)
	b.mu.Unlock()
	if a == nil || a.pending.Add(-1) > 0 {
		return
	}
	if err := a.d.Ack(false); err != nil {
		// The channel closed: RabbitMQ delivers the reply again, and it
		// is then counted as late.
		b.cfg.logger.Info("reply not acknowledged (channel closed); it will come again", slog.String(logCorrelation, a.d.CorrelationId), slog.String(logError, err.Error()))
	}
}

// wait registers c as waiting for corr, unless a parked reply answers it
// at once (ok).
func (b *Bridge) wait(corr string, c *call) (d amqp.Delivery, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.mu.parked[corr]; ok {
		delete(b.mu.parked, corr)
		b.rememberLocked(corr, time.Now())
		return p.d, true
	}
	b.mu.waiting[corr] = append(b.mu.waiting[corr], c)
	return d, false
}

// dropUnknown drops the parked replies older than the grace period:
// their correlation ids are unknown.
func (b *Bridge) dropUnknown(now time.Time) {
	var drop []amqp.Delivery
	b.mu.Lock()
	for corr, p := range b.mu.parked {
		if now.Sub(p.at) >= b.cfg.grace {
			drop = append(drop, p.d)
			delete(b.mu.parked, corr)
		}
	}
	b.mu.Unlock()
	for _, d := range drop {
		b.stats.Unknown.Add(1)
		b.cfg.logger.Warn("reply for no task of this replica; dropped", slog.String(logOutcome, "unknown"),
			slog.String(logCorrelation, d.CorrelationId), slog.String("app_id", d.AppId), slog.Int("bytes", len(d.Body)),
			slog.Duration("waited", b.cfg.grace))
		b.ackDropped(d)
	}
}

func (b *Bridge) ackDropped(d amqp.Delivery) {
	if err := d.Ack(false); err != nil {
		b.cfg.logger.Info("dropped reply not acknowledged", slog.String(logError, err.Error()))
	}
}

// unwait stops c waiting. It reports false when c was no longer waiting:
// a reply took it, and its answer is (or is about to be) in c.reply.
func (b *Bridge) unwait(corr string, c *call) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	cs := b.mu.waiting[corr]
	i := slices.Index(cs, c)
	if i < 0 {
		return false
	}
	cs = slices.Delete(slices.Clone(cs), i, i+1)
	if len(cs) == 0 {
		delete(b.mu.waiting, corr)
	} else {
		b.mu.waiting[corr] = cs
	}
	return true
}

// onReply matches a reply to the tasks waiting for its correlation id.
// Every task waiting for it gets it (they are runs of the same step of
// the same instance). A reply for a task answered recently is a duplicate
// run's: counted as late and dropped. Any other reply nobody waits for is
// parked for the grace period (see Bridge.mu.parked), then dropped as
// unknown.
func (b *Bridge) onReply(d amqp.Delivery) {
	corr := d.CorrelationId
	now := time.Now()
	b.mu.Lock()
	cs := b.mu.waiting[corr]
	delete(b.mu.waiting, corr)
	_, late := b.mu.answered[corr]
	var replaced *amqp.Delivery
	switch {
	case len(cs) > 0:
		b.rememberLocked(corr, now)
	case !late && corr != "":
		if p, ok := b.mu.parked[corr]; ok {
			replaced = &p.d
		}
		b.mu.parked[corr] = parked{d: d, at: now}
	}
	b.mu.Unlock()
	switch {
	case len(cs) > 0:
		a := &answer{d: d}
		a.pending.Store(int32(len(cs)))
		for _, c := range cs {
			c.reply <- a
		}
	case late || replaced != nil:
		if replaced != nil {
			d = *replaced // two replies for one parked task: keep the newer
		}
		b.stats.Late.Add(1)
		b.cfg.logger.Info("reply for a task already answered (a duplicate run); dropped", slog.String(logOutcome, "late"),
			slog.String(logCorrelation, corr), slog.String("app_id", d.AppId))
		b.ackDropped(d)
	case corr == "":
		b.stats.Unknown.Add(1)
		b.cfg.logger.Warn("reply without a correlation id; dropped", slog.String(logOutcome, "unknown"),
			slog.String("app_id", d.AppId), slog.Int("bytes", len(d.Body)))
		b.ackDropped(d)
	}
}

// rememberLocked notes corr as answered and forgets old entries.
func (b *Bridge) rememberLocked(corr string, now time.Time) {
	b.mu.answered[corr] = now
	if len(b.mu.answered)%1024 == 0 {
		for k, at := range b.mu.answered {
			if now.Sub(at) > answeredMemory {
				delete(b.mu.answered, k)
			}
		}
	}
}
