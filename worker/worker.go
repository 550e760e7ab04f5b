package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/tracing"
)

// Worker consumes the tasks of the queues it has handlers for and produces
// their results. Configure it with Use and Handle, then call Run once.
type Worker struct {
	cfg  *config
	base []kgo.Opt // validated client options shared by every client

	mu struct {
		sync.Mutex
		mws     []Middleware
		queues  []*queue
		names   map[string]bool
		errs    []error // invalid Handle calls, returned by Run
		running bool
	}
}

// New validates the options and returns a Worker. It does not connect:
// Run does.
func New(opts ...Option) (*Worker, error) {
	cfg := defaults()
	for _, o := range opts {
		if err := o(cfg); err != nil {
			return nil, err
		}
	}
	base, err := cfg.build()
	if err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, base: base}
	w.mu.names = map[string]bool{}
	return w, nil
}

// Use adds middleware applied to every handler, the first outermost. It
// affects handlers registered after the call as well as before it, as long
// as Run has not started.
func (w *Worker) Use(mw ...Middleware) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mu.mws = append(w.mu.mws, mw...)
}

// Handle registers h for the tasks of queue name, consumed from the topic
// tasks.<name>. Call it before Run: an invalid call (empty name, nil
// handler, a queue registered twice, a concurrency below 1) makes Run
// return an error wrapping ErrBadHandle; a call once Run started is logged
// and ignored.
func (w *Worker) Handle(name string, h Handler, opts ...HandleOption) {
	qc := queueConfig{concurrency: DefaultConcurrency}
	for _, o := range opts {
		o(&qc)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	switch {
	case w.mu.running:
		err = fmt.Errorf("%w: Handle(%q) after Run started", ErrBadHandle, name)
	case name == "":
		err = fmt.Errorf("%w: empty queue name", ErrBadHandle)
	case h == nil:
		err = fmt.Errorf("%w: nil handler for queue %q", ErrBadHandle, name)
	case w.mu.names[name]:
		err = fmt.Errorf("%w: queue %q registered twice", ErrBadHandle, name)
	case qc.concurrency < 1:
		err = fmt.Errorf("%w: concurrency %d for queue %q; must be at least 1", ErrBadHandle, qc.concurrency, name)
	}
	if err != nil {
		w.mu.errs = append(w.mu.errs, err)
		w.cfg.logger.Error("invalid Handle call", slog.String(logError, err.Error()))
		return
	}
	w.mu.names[name] = true
	w.mu.queues = append(w.mu.queues, &queue{name: name, handler: h, concurrency: qc.concurrency, answered: qc.answered})
}

// Run consumes until ctx is cancelled, then drains (see the package
// documentation) and returns nil. It returns early with an error when a
// client cannot be created or a result cannot be produced; tasks not
// committed then run again on the next worker.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.mu.running {
		w.mu.Unlock()
		return ErrRunning
	}
	w.mu.running = true
	queues, mws, errs := w.mu.queues, w.mu.mws, w.mu.errs
	w.mu.Unlock()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if len(queues) == 0 {
		return ErrNoHandlers
	}

	// No linger: a result waiting for company delays the next step of its
	// request, and results of concurrent handlers batch anyway while a
	// produce request is in flight. WithKafkaOpts may set one.
	producer, err := kgo.NewClient(append(append([]kgo.Opt{kgo.ProducerLinger(0)}, w.base...),
		// Results go exactly where the task says: never let a partitioner
		// choose (a hashed partition would reach the wrong processor).
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)...)
	if err != nil {
		return fmt.Errorf("stepwise: worker producer: %w", err)
	}
	defer producer.Close()

	// runCtx ends consuming: on the caller's cancel or on a fatal error.
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	// hardCtx ends handlers and produces: after the drain timeout.
	hardCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()

	var wg sync.WaitGroup
	consumers := make([]*consumer, 0, len(queues))
	for _, q := range queues {
		c, err := w.newConsumer(q, chain(q.handler, append([]Middleware{Recover}, mws...)...), producer, stop)
		if err != nil {
			stop(err)
			for _, c := range consumers {
				c.cl.Close()
			}
			return err
		}
		consumers = append(consumers, c)
	}
	for _, c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(runCtx, hardCtx)
		}()
	}

	<-runCtx.Done()
	w.cfg.logger.Info("worker draining", slog.Duration("timeout", w.cfg.drainTimeout))
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(w.cfg.drainTimeout):
		w.cfg.logger.Warn("drain timeout: cancelling running handlers; their tasks will run again elsewhere")
		hardStop()
		select {
		case <-drained:
		case <-time.After(abandonGrace):
			// A handler ignoring its context must not hold the process:
			// its task is uncommitted and runs again elsewhere.
			w.cfg.logger.Error("handlers still running after cancellation; leaving them behind")
		}
	}
	for _, c := range consumers {
		c.close()
	}
	if err := context.Cause(runCtx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// abandonGrace is how long Run waits for handlers after cancelling them at
// the drain timeout.
const abandonGrace = 5 * time.Second

// queue is one registered handler.
type queue struct {
	name        string
	handler     Handler
	concurrency int
	answered    func(*Task) // AfterResult; nil when not set
}

// consumer runs one queue: its own client and consumer group, so each queue
// scales and rebalances on its own.
type consumer struct {
	w        *Worker
	q        *queue
	topic    string
	h        Handler // wrapped in the middleware chain
	cl       *kgo.Client
	producer *kgo.Client
	tr       *tracker
	cancels  *cancels                // running handlers, for cancel control messages
	fail     context.CancelCauseFunc // stops the worker on a fatal error
	log      *slog.Logger

	closing sync.Once
	inClose chan struct{} // closed when the worker shuts down: revocations stop waiting
	handled sync.WaitGroup
}

func (w *Worker) newConsumer(q *queue, h Handler, producer *kgo.Client, fail context.CancelCauseFunc) (*consumer, error) {
	c := &consumer{
		w: w, q: q, h: h, producer: producer, fail: fail,
		topic:   w.cfg.prefix.Tasks(q.name),
		tr:      newTracker(),
		cancels: newCancels(),
		inClose: make(chan struct{}),
		log:     w.cfg.logger.With(slog.String(logQueue, q.name)),
	}
	opts := append([]kgo.Opt{
		// Defaults WithKafkaOpts may override. A dead worker's tasks wait
		// for its session to expire (franz-go's default is 45 s); partitions
		// added to the task topic are seen at the next metadata refresh
		// (default 5 min).
		kgo.SessionTimeout(DefaultSessionTimeout),
		kgo.HeartbeatInterval(time.Second),
		kgo.MetadataMaxAge(DefaultMetadataMaxAge),
	}, w.base...)
	opts = append(opts,
		kgo.ConsumerGroup(w.cfg.group+"."+q.name),
		kgo.ConsumeTopics(c.topic),
		// Workers of one queue may be written in several languages and
		// share its group; the group can only form on a protocol every
		// member offers. "range" is the one librdkafka (the Python SDK)
		// offers by default as well.
		kgo.Balancers(kgo.CooperativeStickyBalancer(), kgo.RangeBalancer()),
		// Tasks are written in processor transactions: an aborted one must
		// never run.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A new group starts with the oldest task: tasks dispatched before
		// the first worker of a queue started are waiting for it.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Commit only what was marked: a task is marked once its result is
		// acknowledged and every earlier task of its partition is too.
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(w.cfg.commitInterval),
		// Between a poll and the tracking of its records no rebalance may
		// happen, or a revoked partition's records would slip in.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			c.tr.assign(m[c.topic])
			c.log.Info("partitions assigned", slog.Any("partitions", m[c.topic]))
		}),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			c.tr.revoke(m[c.topic], 0)
			c.log.Warn("partitions lost; their running tasks will run again elsewhere", slog.Any("partitions", m[c.topic]))
		}),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("stepwise: worker consumer for queue %q: %w", q.name, err)
	}
	c.cl = cl
	return c, nil
}

// onRevoked waits (bounded) for the running tasks of the revoked partitions
// so their results are committed here rather than run twice, then commits.
func (c *consumer) onRevoked(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	timeout := c.w.cfg.drainTimeout
	select {
	case <-c.inClose:
		timeout = 0 // the drain already waited
	default:
	}
	if left := c.tr.revoke(m[c.topic], timeout); left > 0 {
		c.log.Warn("partitions revoked with tasks still running; they will run again elsewhere", slog.Int("running", left))
	}
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		c.log.Warn("commit on revoke failed; finished tasks may run again", slog.String(logError, err.Error()))
	}
}

// run polls and dispatches until runCtx ends, then waits for the handlers it
// started (they end by themselves or when hardCtx is cancelled).
func (c *consumer) run(runCtx, hardCtx context.Context) {
	defer c.handled.Wait()
	slots := make(chan struct{}, c.q.concurrency)
	for runCtx.Err() == nil {
		// Poll no more than can start soon: the rest stays in Kafka.
		fetches := c.cl.PollRecords(runCtx, c.q.concurrency)
		var recs []*kgo.Record
		var entries []*entry
		fetches.EachRecord(func(r *kgo.Record) {
			if e := c.tr.add(r); e != nil {
				recs = append(recs, r)
				entries = append(entries, e)
			}
		})
		c.cl.AllowRebalance()
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
				return
			}
			c.log.Warn("fetch error", slog.String(logTopic, topic), slog.Int(logPartition, int(p)), slog.String(logError, err.Error()))
		})
		// Control messages first: a cancel polled with its task, or
		// with a task waiting for a slot, stops it before it starts.
		control := make([]bool, len(recs))
		for i, r := range recs {
			if key, ok := isControl(r); ok {
				control[i] = true
				if c.cancels.cancel(key) {
					c.log.Info("task cancelled", slog.String(logRequest, string(r.Key)), slog.Int64(logOffset, r.Offset))
				}
			}
		}
		for i, r := range recs {
			if control[i] {
				// Not a task: done at once.
				if c.tr.start(entries[i]) {
					c.markDone(r, entries[i])
					c.tr.release(entries[i])
				}
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-runCtx.Done():
				// Draining: tasks not started stay uncommitted and run
				// again on the next owner of their partition.
				return
			}
			if !c.tr.start(entries[i]) {
				<-slots
				continue
			}
			c.handled.Add(1)
			go func(r *kgo.Record, e *entry) {
				defer c.handled.Done()
				defer func() { <-slots }()
				c.process(hardCtx, r, e)
			}(r, entries[i])
		}
	}
}

// close ends the consumer after the drain: final commit, leave the group.
func (c *consumer) close() {
	c.closing.Do(func() {
		close(c.inClose)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.cl.CommitMarkedOffsets(ctx); err != nil {
			c.log.Warn("final commit failed; finished tasks may run again", slog.String(logError, err.Error()))
		}
		c.cl.Close()
	})
}

// process runs one task and produces its result. The task is finished (and
// so committable) only when the result is acknowledged, or when it cannot
// be answered at all.
func (c *consumer) process(hardCtx context.Context, rec *kgo.Record, e *entry) {
	defer c.tr.release(e)
	res := c.outcome(hardCtx, rec)
	if res == nil {
		c.markDone(rec, e)
		return
	}
	if res.abandoned {
		return
	}
	if err := c.produce(hardCtx, res.record); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) || errors.Is(err, kgo.ErrRecordTimeout) {
			// Shutting down, or the cluster is unreachable: leave the task
			// uncommitted and stop; it runs again after a restart.
			c.fail(fmt.Errorf("%w for request %s step %s: %w", ErrProduce, res.record.Key, res.step, err))
			return
		}
		// The broker refused this record for good (no such partition,
		// invalid record): retrying cannot help, and stopping would only
		// make every restart fail the same way.
		c.log.Error("result refused by the broker; dropped", slog.String(logRequest, string(res.record.Key)), slog.String(logStep, res.step),
			slog.String(logTopic, res.record.Topic), slog.Int(logPartition, int(res.record.Partition)), slog.String(logError, err.Error()))
	} else if res.task != nil && c.q.answered != nil {
		c.q.answered(res.task)
	}
	c.markDone(rec, e)
}

// unknownPartitionWait bounds how long a result waits for the producer to
// learn of a reply partition it does not know yet.
const unknownPartitionWait = 30 * time.Second

// produce sends a result and waits for the broker's answer. A reply
// partition the producer does not know yet is one added to the results
// topic since it last read the topic's metadata (processors only name
// partitions that exist): it refreshes the metadata and tries again for a
// while, rather than dropping the result and stranding the request. Any
// other error that is not the record's own fault (a broker that restarted
// and no longer knows the producer, a sequence out of order after it) is
// retried until ctx ends: a result sent twice is deduplicated by the
// processor, a result dropped strands its request.
func (c *consumer) produce(ctx context.Context, r *kgo.Record) error {
	deadline := time.Now().Add(unknownPartitionWait)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		done := make(chan error, 1)
		c.producer.Produce(ctx, r, func(_ *kgo.Record, err error) { done <- err })
		err := <-done
		switch {
		case err == nil, refusedForGood(err), errors.Is(err, context.Canceled), errors.Is(err, kgo.ErrClientClosed), errors.Is(err, kgo.ErrRecordTimeout):
			return err
		case strings.Contains(err.Error(), "invalid record partitioning choice"):
			if time.Now().After(deadline) {
				return err
			}
			c.log.Info("reply partition not known yet; refreshing metadata", slog.String(logTopic, r.Topic), slog.Int(logPartition, int(r.Partition)))
			c.producer.ForceMetadataRefresh()
		default:
			c.log.Warn("producing a result failed; retrying", slog.String(logRequest, string(r.Key)), slog.String(logTopic, r.Topic),
				slog.Int(logPartition, int(r.Partition)), slog.String(logError, err.Error()), slog.Duration(logRetryIn, wait))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// refusedForGood reports whether the broker refused a record for what it
// is: sending it again cannot succeed.
func refusedForGood(err error) bool {
	for _, e := range []error{kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidRecord, kerr.CorruptMessage, kerr.InvalidTopicException, kerr.UnknownTopicOrPartition} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (c *consumer) markDone(rec *kgo.Record, e *entry) {
	if mark, moved := c.tr.finish(e); moved {
		c.cl.MarkCommitOffsets(map[string]map[int32]kgo.EpochOffset{rec.Topic: {rec.Partition: mark}})
	}
}

// result is the record answering one task.
type result struct {
	record    *kgo.Record
	step      string
	task      *Task // the task the handler ran; nil when it did not run
	abandoned bool  // the drain timeout cut the handler short: no answer, no commit
}

// outcome reads the task, runs the handler, and builds the result record;
// nil when the task cannot be answered.
func (c *consumer) outcome(hardCtx context.Context, rec *kgo.Record) *result {
	rp, t, err := parseTask(rec, c.q.name)
	if rp == nil {
		c.log.Error("task dropped", slog.String(logTopic, rec.Topic), slog.Int(logPartition, int(rec.Partition)),
			slog.Int64(logOffset, rec.Offset), slog.String(logError, err.Error()))
		return nil
	}
	rp.worker = c.w.cfg.id
	res := &result{step: rp.step}
	switch {
	case err != nil:
		c.log.Error("malformed task", slog.String(logRequest, rp.request), slog.String(logStep, rp.step), slog.String(logAttempt, rp.attempt),
			slog.Int64(logOffset, rec.Offset), slog.String(logError, err.Error()))
		res.record = rp.failure(err.Error(), false)
	case !t.Deadline.IsZero() && !time.Now().Before(t.Deadline):
		res.record = rp.failure(fmt.Sprintf("stepwise: deadline %s passed before the task started", t.Deadline.Format(time.RFC3339Nano)), true)
	default:
		ctx := hardCtx
		if !t.Deadline.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, t.Deadline)
			defer cancel()
		}
		ctx, end, ok := c.cancels.begin(ctx, taskKey(rp.request, rp.step, rp.attempt))
		if !ok {
			return nil // cancelled before it started: nothing to answer
		}
		done := c.w.cfg.metrics.Started(c.q.name, rp.step, rec.Timestamp)
		var span trace.Span
		if c.w.cfg.tracer != nil {
			ctx, span = c.startSpan(ctx, t)
		}
		stopBeats := c.startBeats(ctx, rp, t)
		out, err := c.h(ctx, t)
		stopBeats()
		cancelled := errors.Is(context.Cause(ctx), ErrCancelled)
		end()
		if span != nil {
			defer func() { c.endSpan(span, res, cancelled) }()
		}
		res.task = t
		if hardCtx.Err() != nil {
			res.abandoned = true
			done("abandoned")
			return res
		}
		if cancelled {
			done("cancelled")
			return nil // the request no longer wants it: no result
		}
		res.record = c.answer(rp, out, err)
		done(resultOutcome(res.record))
	}
	return res
}

// startSpan starts the handler span of task t, a child of the task's
// traceparent (the processor's attempt span) when it has one.
func (c *consumer) startSpan(ctx context.Context, t *Task) (context.Context, trace.Span) {
	if sc, ok := tracing.Parse(t.Headers[schemas.HeaderTraceparent]); ok {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return c.w.cfg.tracer.Start(ctx, "handle "+t.Step, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		attribute.String(tracing.KeyRequest, t.Request), attribute.String(tracing.KeyWorkflow, t.Workflow),
		attribute.String(tracing.KeyStep, t.Step), attribute.Int(tracing.KeyAttempt, t.Attempt),
		attribute.String(tracing.KeyQueue, t.Queue), attribute.String(tracing.KeyWorker, c.w.cfg.id),
	))
}

// endSpan ends a handler span with the outcome of res and puts the span's
// traceparent on the result.
func (c *consumer) endSpan(span trace.Span, res *result, cancelled bool) {
	outcome := "cancelled"
	switch {
	case res.abandoned:
		outcome = "abandoned"
	case res.record != nil:
		outcome = resultOutcome(res.record)
		if tp := tracing.Format(span.SpanContext()); tp != "" {
			res.record.Headers = append(res.record.Headers, kgo.RecordHeader{Key: schemas.HeaderTraceparent, Value: []byte(tp)})
		}
	case !cancelled:
		outcome = "none"
	}
	span.SetAttributes(attribute.String(tracing.KeyOutcome, outcome))
	if outcome != "succeeded" {
		span.SetStatus(codes.Error, outcome)
	}
	span.End()
}

// resultOutcome names a result record's outcome for metrics: succeeded,
// retryable (a failure that will be retried if attempts are left) or
// failed.
func resultOutcome(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == schemas.HeaderStatus && string(h.Value) == schemas.StatusOK {
			return "succeeded"
		}
	}
	var e struct {
		Retryable bool `json:"retryable"`
	}
	if json.Unmarshal(r.Value, &e) == nil && e.Retryable {
		return "retryable"
	}
	return "failed"
}

// answer turns a handler's outcome into a result record.
func (c *consumer) answer(rp *reply, out json.RawMessage, err error) *kgo.Record {
	if err != nil {
		var pe *PanicError
		if errors.As(err, &pe) {
			c.log.Error("handler panicked", slog.String(logRequest, rp.request), slog.String(logStep, rp.step), slog.String(logAttempt, rp.attempt),
				slog.String(logError, pe.Error()), slog.String("stack", string(pe.Stack)))
		}
		return rp.failure(err.Error(), !IsPermanent(err))
	}
	if out == nil {
		out = json.RawMessage("{}")
	}
	if !isObject(out) {
		return rp.failure(fmt.Sprintf("stepwise: handler returned %s, not a JSON object", describe(out)), true)
	}
	if len(out) > c.w.cfg.maxResultBytes {
		return rp.failure(fmt.Sprintf("stepwise: output of %d bytes exceeds the limit of %d bytes", len(out), c.w.cfg.maxResultBytes), false)
	}
	return rp.record(schemas.StatusOK, out)
}

// failure builds an error result.
func (rp *reply) failure(message string, retryable bool) *kgo.Record {
	b, _ := json.Marshal(schemas.StepError{Message: message, Retryable: retryable})
	return rp.record(schemas.StatusError, b)
}

func (rp *reply) record(status string, value []byte) *kgo.Record {
	return &kgo.Record{
		Topic:     rp.topic,
		Partition: rp.partition,
		Key:       []byte(rp.request),
		Value:     value,
		Headers: []kgo.RecordHeader{
			{Key: schemas.HeaderRequest, Value: []byte(rp.request)},
			{Key: schemas.HeaderStep, Value: []byte(rp.step)},
			{Key: schemas.HeaderAttempt, Value: []byte(rp.attempt)},
			{Key: schemas.HeaderStatus, Value: []byte(status)},
			{Key: schemas.HeaderWorker, Value: []byte(rp.worker)},
		},
	}
}
