package processors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/stepwise-run/stepwise/definitions"
	"github.com/stepwise-run/stepwise/internal/logkey"
	"github.com/stepwise-run/stepwise/metrics"
	"github.com/stepwise-run/stepwise/processors/machine"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topics"
	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/tracing"
)

// maxPollWait caps how long the loop waits for records when no timer is due
// sooner, so that timers restored by a new assignment fire without delay
// beyond this.
const maxPollWait = 200 * time.Millisecond

// errNotOwned aborts a batch that touches a partition this replica no longer
// owns (revoked or lost while the batch ran).
var errNotOwned = errors.New("stepwise: partition no longer owned")

// errRestart means the loop must start over with a new group session: a
// transaction ended with an error, so whether it committed is unknown and
// neither the in-memory state nor the client's offsets can be trusted.
var errRestart = errors.New("stepwise: transaction outcome unknown")

// Processor is one replica of the transactional processor. Create it with
// New and run it with Run; it is not reusable after Run returns.
//
// Goroutines: Run's goroutine polls and handles batches (the loop); the
// group callbacks (restore on assignment, drop on revoke or loss) run on the
// Kafka client's group goroutine. They share only mu.parts.
type Processor struct {
	cfg    Config
	log    *slog.Logger
	defs   *definitions.Catalog // every version of every workflow, followed live
	follow *definitions.Follower
	m      *machine.Machine
	enc    *encoder
	prefix topology.Prefix

	mu struct {
		sync.Mutex
		// parts holds the owned partition numbers whose state is
		// restored. Callbacks add and remove entries; only the loop
		// reads or changes a partition's contents.
		parts map[int32]*partition
		// parked holds the partitions revoked at the end of generation
		// parkedGen. The next generation's assignment takes back those
		// it gives this replica again without restoring them: nobody
		// else can have written them in between. Any other assignment,
		// and any loss, discards them.
		parked    map[int32]*partition
		parkedGen int32
		// gen is the group generation of the latest assignment, and
		// assignment its partition numbers: what the group gave this
		// replica. parts holds no partition outside it (see assigned
		// and owns).
		gen        int32
		assignment map[int32]bool
	}

	// poison holds the inputs (topic/partition/offset or timer) whose
	// effects the broker refused as too large; on replay they are
	// answered as oversize instead of being produced again, so a record
	// the broker will never take cannot wedge its partition: each abort
	// marks one more input, and the replay goes past it. Loop only.
	poison map[string]bool
	// lastCatchUp is when catchUpDefinitions last began reading. Loop only.
	lastCatchUp time.Time

	st      counters
	drops   dropCounts
	ready   readiness
	metrics *metrics.Processor // nil: metrics off
	tracer  *tracing.Recorder  // nil: tracing off
	hooks   []kgo.Opt          // the group session client's metric hooks, if any (kprom serves one client at a time)
	split   *commitSplit       // what each commit costs, when the log is at debug (commitsplit.go); nil: off
}

// counters are the processor's running totals, updated atomically.
type counters struct {
	events                                atomic.Uint64
	committed, aborted, restarts          atomic.Uint64
	restores, restoredRecords, badRecords atomic.Uint64
	disowned                              atomic.Uint64
	restoreNanos, lastRestoreNanos        atomic.Int64
}

// Stats is a snapshot of a processor's counters.
type Stats struct {
	Events    uint64 // events applied to the machine (in committed or aborted batches)
	Committed uint64 // transactions committed
	Aborted   uint64 // transactions aborted
	Restarts  uint64 // group sessions restarted after a transaction ended in error

	// Drops counts, by reason, the inputs (and timers) of committed
	// transactions that changed no state: duplicates, stale results,
	// results for unknown requests or on the wrong partition, starts
	// with invalid ids, records naming no request, oversize effects.
	// Each was logged once with its reason.
	Drops map[machine.Reason]uint64

	// Disowned counts the partitions this replica held although the
	// group no longer gave them to it (a revoke it was not told of),
	// found and set aside (parked) before any event or timer of
	// theirs ran; see assigned and owns.
	Disowned uint64

	Restores        uint64        // restores run (one per assignment)
	RestoredRecords uint64        // state records read by restores
	BadRecords      uint64        // state records that could not be decoded
	RestoreTime     time.Duration // total time spent restoring
	LastRestore     time.Duration // duration of the latest restore

	Partitions []int32 // owned partition numbers, ascending
}

// Stats returns the current counters.
func (p *Processor) Stats() Stats {
	p.mu.Lock()
	parts := slices.Sorted(maps.Keys(p.mu.parts))
	p.mu.Unlock()
	return Stats{
		Events: p.st.events.Load(), Drops: p.drops.snapshot(),
		Committed: p.st.committed.Load(), Aborted: p.st.aborted.Load(), Restarts: p.st.restarts.Load(),
		Disowned: p.st.disowned.Load(),
		Restores: p.st.restores.Load(), RestoredRecords: p.st.restoredRecords.Load(), BadRecords: p.st.badRecords.Load(),
		RestoreTime: time.Duration(p.st.restoreNanos.Load()), LastRestore: time.Duration(p.st.lastRestoreNanos.Load()),
		Partitions: parts,
	}
}

// readiness is what Ready reads: set by the group callbacks and Run.
type readiness struct {
	joined    atomic.Bool  // an assignment of the current session completed
	restoring atomic.Int32 // assignments restoring now
}

// ErrNotReady is what Ready returns while the processor is not ready.
var ErrNotReady = errors.New("stepwise: processor not ready")

// Ready returns nil once the replica joined its group and restored every
// partition it was given, and while that holds; else ErrNotReady with why.
// It is what /readyz of `stepwise run --http` answers.
func (p *Processor) Ready() error {
	switch {
	case !p.ready.joined.Load():
		return fmt.Errorf("%w: not in the processors' group yet", ErrNotReady)
	case p.ready.restoring.Load() > 0:
		return fmt.Errorf("%w: restoring assigned partitions", ErrNotReady)
	}
	return nil
}

// New validates cfg and returns a processor. It does not connect.
func New(cfg Config) (*Processor, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, err := cfg.Conn.Opts(); err != nil {
		return nil, err
	}
	opts := append([]machine.Option{machine.WithMaxPayload(cfg.payloadLimit())}, cfg.MachineOptions...)
	defs := definitions.NewCatalog()
	p := &Processor{
		cfg:    cfg,
		log:    cfg.Logger.With("replica", cfg.ReplicaID),
		defs:   defs,
		m:      machine.New(defs, opts...),
		enc:    newEncoder(cfg.Conn.Prefix, cfg.Tracer != nil),
		tracer: tracing.NewRecorder(cfg.Tracer),
		prefix: cfg.Conn.Prefix,
		poison: map[string]bool{},
	}
	if cfg.Metrics != nil {
		p.metrics = metrics.NewProcessor(cfg.Metrics)
		p.hooks = metrics.KafkaHooks(cfg.Metrics, "processor")
	}
	p.split = newCommitSplitIf(cfg.measureCommits, p.log)
	p.mu.parts = map[int32]*partition{}
	p.mu.parked = map[int32]*partition{}
	p.mu.assignment = map[int32]bool{}
	return p, nil
}

// connOpts returns the connection options every client of this processor
// starts from.
func (p *Processor) connOpts() []kgo.Opt {
	opts, _ := p.cfg.Conn.Opts() // validated in New
	opts = append(opts, kgo.WithLogger(kgoLogger{p.log}))
	return append(opts, p.cfg.ExtraOpts...)
}

// Run waits for the topics of the plan, joins the processors' group and
// processes until ctx is done. Then it finishes the open transaction, leaves
// the group and returns nil. It returns an error when a topic's cleanup
// policy does not match the plan, when ctx ends before the topics exist, or
// the transactional producer failed for good (fenced by a newer replica of
// the same id, for one).
func (p *Processor) Run(ctx context.Context) error {
	if err := p.waitTopics(ctx, p.cfg.Set); err != nil {
		return err
	}
	stop, err := p.followDefinitions(ctx)
	if err != nil {
		return err
	}
	defer stop()
	opts := append(p.connOpts(),
		kgo.ConsumerGroup(GroupID(p.prefix)),
		kgo.ConsumeTopics(p.prefix.Requests(), p.prefix.Results()),
		kgo.Balancers(CoPartitionBalancer()),
		kgo.SessionTimeout(p.cfg.SessionTimeout),
		kgo.HeartbeatInterval(p.cfg.Heartbeat),
		kgo.RebalanceTimeout(p.cfg.RebalanceTimeout),
		kgo.TransactionalID(TransactionalID(p.prefix, p.cfg.ReplicaID)),
		kgo.TransactionTimeout(p.cfg.TxnTimeout),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(p.cfg.FetchMaxWait),
		kgo.ProducerLinger(0),
		// Partitions added to the topics are assigned (and used for
		// dispatch) at the next metadata refresh; franz-go's default of
		// 5 minutes would leave new requests on them waiting that long.
		kgo.MetadataMaxAge(10*time.Second),
		// Tasks and completions are read by clients in every language;
		// not all of them have every codec (kafkajs has no snappy, which
		// would be franz-go's default), so the processor writes none.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(int32(p.cfg.MaxPayload+4096)),
		kgo.RecordPartitioner(newHomePartitioner(p.prefix)),
		kgo.OnPartitionsAssigned(p.assigned),
		kgo.OnPartitionsRevoked(p.revoked),
		kgo.OnPartitionsLost(p.lost),
	)
	opts = append(opts, p.hooks...)
	if p.split != nil {
		opts = append(opts, kgo.WithHooks(p.split))
	}
	if p.cfg.ExplicitTxnPartitions {
		// A transaction that begins right after a commit often finds the
		// coordinator still writing the previous one's markers and must
		// retry; franz-go's default 20 ms wait was most of each cycle.
		opts = append(opts, kgo.MaxVersions(withoutImplicitTxnPartitions()), kgo.ConcurrentTransactionsBackoff(time.Millisecond))
	} else {
		// The timers' fence (fenceTimers) names its topics; version 6
		// of TxnOffsetCommit names them by id only.
		v := kversion.Stable()
		v.SetMaxKeyVersion(int16(kmsg.TxnOffsetCommit), 5)
		opts = append(opts, kgo.MaxVersions(v))
	}
	for {
		sess, err := kgo.NewGroupTransactSession(opts...)
		if err != nil {
			return fmt.Errorf("stepwise: processor client: %w", err)
		}
		p.log.Info("processor started", "group", GroupID(p.prefix), "transactional_id", TransactionalID(p.prefix, p.cfg.ReplicaID))
		err = p.loop(ctx, sess)
		p.ready.joined.Store(false)
		sess.Close() // leaves the group; the revoke callback drops the state
		p.mu.Lock()
		clear(p.mu.parts)
		clear(p.mu.parked)
		clear(p.mu.assignment)
		p.mu.gen = 0
		p.mu.Unlock()
		if !errors.Is(err, errRestart) || ctx.Err() != nil {
			p.log.Info("processor stopped", logkey.Error, err)
			return err
		}
		// The outcome of the last transaction is unknown: start over
		// from what the broker has (committed offsets, state topic).
		p.st.restarts.Add(1)
		p.metrics.Restarted()
		p.log.Warn("restarting the group session", logkey.Error, err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// Backoff of waitTopics between two checks of the topic plan.
const (
	topicsFirstWait = 500 * time.Millisecond
	topicsMaxWait   = 5 * time.Second
)

// waitTopics returns once the cluster's topics match the plan. Processors
// are started together with `stepwise topics create` (a Deployment next to
// a Job), so topics that are missing, or co-partitioned topics whose counts
// differ while partitions are being added, are waited for: logged at each
// check and checked again with a doubling backoff until ctx ends. A wrong
// cleanup policy is returned at once: nothing being created fixes it.
func (p *Processor) waitTopics(ctx context.Context, set *topology.Set) error {
	cl, err := kgo.NewClient(p.connOpts()...)
	if err != nil {
		return fmt.Errorf("stepwise: admin client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	wait := topicsFirstWait
	for {
		err := topics.Check(ctx, adm, p.prefix, set.Topics(p.prefix))
		var drift *topics.DriftError
		if err == nil || !errors.As(err, &drift) || !drift.Passing {
			return err
		}
		p.log.Warn("waiting for the topics of the plan", "problems", drift.Problems, logkey.RetryIn, wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("stepwise: stopped while waiting for topics: %w", err)
		case <-time.After(wait):
		}
		wait = min(2*wait, topicsMaxWait)
	}
}

// followDefinitions publishes the configured workflows, reads the
// definitions topic to its end and follows it from then on. The
// returned function stops following.
func (p *Processor) followDefinitions(ctx context.Context) (stop func(), err error) {
	if len(p.cfg.Set.Order) > 0 {
		out, err := definitions.Publish(ctx, p.connOpts(), p.prefix, p.cfg.Set, nil, p.cfg.Now())
		if err != nil {
			return nil, err
		}
		for _, o := range out {
			p.log.Info("definition applied", logkey.Workflow, o.Workflow, logkey.Version, o.Version, "unchanged", o.Unchanged)
		}
	}
	f, err := definitions.NewFollower(p.connOpts(), p.prefix, p.defs, p.log)
	if err != nil {
		return nil, err
	}
	if err := f.Sync(ctx); err != nil {
		f.Close()
		return nil, err
	}
	// Requests may run on any version still held: check every queue
	// they may dispatch to.
	if err := p.waitTopics(ctx, p.defs.All()); err != nil {
		f.Close()
		return nil, err
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(fctx)
	}()
	p.follow = f
	return func() {
		cancel()
		f.Close()
		<-done
	}, nil
}

// catchUpDefinitions reads the definitions topic to its end when a start
// names a workflow or version this processor does not know, so that a
// start sent right after `stepwise apply` finds what was applied. It runs
// at most once per start record: not when a read began after the record
// was written.
func (p *Processor) catchUpDefinitions(ctx context.Context, ev machine.Event, written time.Time) {
	if p.follow == nil {
		return
	}
	if _, _, err := p.defs.Resolve(ev.Workflow, ev.Version); err == nil || errors.Is(err, definitions.ErrDeleted) {
		return
	}
	if p.lastCatchUp.After(written) {
		return
	}
	p.lastCatchUp = time.Now()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.follow.Sync(sctx); err != nil {
		p.log.Warn("reading the definitions topic to its end failed", logkey.Request, ev.Request, logkey.Workflow, ev.Workflow, logkey.Error, err)
	}
}

// partitionNumbers returns the partition numbers of the processors' input
// topics in a callback's map.
func (p *Processor) partitionNumbers(m map[string][]int32) []int32 {
	set := map[int32]bool{}
	for _, t := range []string{p.prefix.Requests(), p.prefix.Results()} {
		for _, n := range m[t] {
			set[n] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// assigned restores the state of newly assigned partitions. It runs in the
// group callback on purpose: fetching of the assigned partitions starts
// only once it returns, so no event meets a partition without its state.
// Partitions this replica held in the generation just before, and kept
// since they were revoked, are taken back as they are.
//
// The balancer is eager, so m is the whole assignment and every generation
// ends in a revoke of everything: parts should be empty here. It is not
// when a revoke was never delivered: kgo's GroupTransactSession calls the
// revoke (and loss) callback only for the first revoke after a transaction
// ended, so a replica that ran no transaction between two rebalances (idle,
// or restoring) hears of the first only. Whatever is left in parts is
// treated as revoked at the end of the generation it was assigned in.
func (p *Processor) assigned(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	p.ready.restoring.Add(1)
	defer func() {
		p.ready.restoring.Add(-1)
		p.ready.joined.Store(true)
	}()
	_, gen := cl.GroupMetadata()
	var nums, kept []int32
	p.mu.Lock()
	if left := slices.Sorted(maps.Keys(p.mu.parts)); len(left) > 0 {
		p.log.Warn("partitions held without their revoke; treated as revoked", "partitions", left, "held_generation", p.mu.gen, "generation", gen)
		for _, n := range left {
			p.parkLocked(n)
		}
	}
	p.mu.gen = gen
	clear(p.mu.assignment)
	for _, n := range p.partitionNumbers(m) {
		p.mu.assignment[n] = true
	}
	for _, n := range p.partitionNumbers(m) {
		switch {
		case p.mu.parked[n] != nil && p.mu.parkedGen == gen-1:
			p.mu.parts[n] = p.mu.parked[n]
			kept = append(kept, n)
		default:
			nums = append(nums, n)
		}
	}
	clear(p.mu.parked)
	p.mu.Unlock()
	if len(kept) > 0 {
		p.log.Info("partitions kept", "partitions", kept, "generation", gen)
	}
	if len(nums) == 0 {
		return
	}
	for {
		res, err := restoreState(ctx, p.connOpts(), p.prefix.State(), nums, p.log)
		if err == nil {
			p.mu.Lock()
			maps.Copy(p.mu.parts, res.parts)
			p.mu.Unlock()
			p.st.restores.Add(1)
			p.st.restoredRecords.Add(uint64(res.records))
			p.st.badRecords.Add(uint64(res.bad))
			p.st.restoreNanos.Add(int64(res.duration))
			p.st.lastRestoreNanos.Store(int64(res.duration))
			p.metrics.Restored(res.records, res.duration)
			for _, n := range nums {
				if part := res.parts[n]; part != nil {
					p.metrics.Partition(n, part.running, part.timers.len())
				}
			}
			p.log.Info("partitions restored", "partitions", nums, "generation", gen, "records", res.records, "duration", res.duration)
			return
		}
		if ctx.Err() != nil {
			return // client closing
		}
		p.log.Error("restore failed; retrying", "partitions", nums, logkey.Error, err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// parkLocked moves partition n from the owned set to the parked one, as
// a revoke at the end of generation p.mu.gen would have: the next
// generation may take it back as it is, any later one restores it. It
// counts n as disowned: called only for a partition whose revoke never
// came. p.mu must be held.
func (p *Processor) parkLocked(n int32) {
	part := p.mu.parts[n]
	if part == nil {
		return
	}
	if p.mu.parkedGen != p.mu.gen {
		clear(p.mu.parked)
	}
	p.mu.parkedGen = p.mu.gen
	p.mu.parked[n] = part
	delete(p.mu.parts, n)
	delete(p.mu.assignment, n)
	p.st.disowned.Add(1)
	p.metrics.Disowned()
	p.metrics.PartitionGone(n)
}

// owns reports whether the group client holds partition n now: in the
// generation of the owned set's assignment, and in that assignment. A
// partition of the owned set that fails it is parked (parkLocked) and
// logged. It is the check before an event or timer of n runs; assigned
// keeps the owned set within the assignment, this catches a revoke not yet
// followed by the next assignment.
func (p *Processor) owns(cl *kgo.Client, n int32) bool {
	_, gen := cl.GroupMetadata()
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen == p.mu.gen && p.mu.assignment[n] {
		return true
	}
	if p.mu.parts[n] != nil {
		p.log.Warn("partition held outside the group's assignment; set aside", "partition", n, "held_generation", p.mu.gen, "generation", gen, "assigned", p.mu.assignment[n])
		p.parkLocked(n)
	}
	return false
}

// revoked parks the revoked partitions (see assigned). The open
// transaction, if any, aborts: GroupTransactSession saw the revoke.
func (p *Processor) revoked(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	_, gen := cl.GroupMetadata()
	nums := p.partitionNumbers(m)
	p.mu.Lock()
	if p.mu.parkedGen != gen {
		clear(p.mu.parked)
	}
	p.mu.parkedGen = gen
	for _, n := range nums {
		if part := p.mu.parts[n]; part != nil {
			p.mu.parked[n] = part
			delete(p.mu.parts, n)
		}
		delete(p.mu.assignment, n)
	}
	p.mu.Unlock()
	p.metrics.PartitionGone(nums...)
	if len(nums) > 0 {
		p.log.Info("partitions revoked", "partitions", nums, "generation", gen)
	}
}

// lost forgets partitions: whoever owns them next restores them from the
// state topic.
func (p *Processor) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	nums := p.partitionNumbers(m)
	p.mu.Lock()
	for _, n := range nums {
		delete(p.mu.parts, n)
		delete(p.mu.assignment, n)
	}
	clear(p.mu.parked)
	p.mu.Unlock()
	p.metrics.PartitionGone(nums...)
	p.log.Warn("partitions lost", "partitions", nums)
}

// batch is one open transaction.
type batch struct {
	ctx    context.Context // for producing; not canceled by shutdown
	now    time.Time
	began  time.Time
	parts  map[int32]*staged
	n      int            // records consumed
	timed  map[int32]bool // partitions whose timers fired in the batch
	failed error          // set: the batch must abort
	drops  []drop         // reported once the batch commits
	obs    *metrics.Batch // what to count if it commits; nil: metrics off
	spans  []span         // what to trace if it commits; always empty when tracing is off

	mu         sync.Mutex // guards the fields below, set by produce promises
	produceErr error
	// tooLarge is the source of the largest record the broker refused
	// as too large. Only that one is marked: the broker refuses a whole
	// produce batch, so the other records refused with it may be fine.
	tooLarge     string
	tooLargeSize int
}

func (b *batch) promise(src string) func(*kgo.Record, error) {
	return func(r *kgo.Record, err error) {
		if err == nil {
			return
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.produceErr == nil {
			b.produceErr = fmt.Errorf("produce to %s: %w", r.Topic, err)
		}
		if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) {
			if size := recordSize(r); size > b.tooLargeSize {
				b.tooLarge, b.tooLargeSize = src, size
			}
		}
	}
}

// stage returns the staged overlay of partition part, or nil when this
// replica does not own it (or the group client does not, see owns).
func (p *Processor) stage(cl *kgo.Client, b *batch, part int32) *staged {
	if st := b.parts[part]; st != nil {
		return st
	}
	if !p.owns(cl, part) {
		return nil
	}
	p.mu.Lock()
	base := p.mu.parts[part]
	p.mu.Unlock()
	if base == nil {
		return nil
	}
	st := newStaged(base)
	b.parts[part] = st
	return st
}

// loop polls, applies and commits until ctx is done.
func (p *Processor) loop(ctx context.Context, sess *kgo.GroupTransactSession) error {
	for ctx.Err() == nil {
		var records []*kgo.Record
		if fs := p.poll(ctx, sess, p.pollWait(), p.cfg.MaxBatch); fs != nil {
			if fs.IsClientClosed() {
				return nil
			}
			records = fs.Records()
		}
		now := p.cfg.Now()
		timers := p.dueTimers(sess.Client(), now)
		if len(records) == 0 && len(timers) == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("%w: begin transaction: %v", errRestart, err)
		}
		b := &batch{ctx: context.WithoutCancel(ctx), now: now, began: time.Now(), parts: map[int32]*staged{}, obs: p.metrics.NewBatch()}
		if p.split != nil {
			p.split.began(b.began)
		}
		p.handle(sess, b, records, timers)
		for p.cfg.CommitInterval > 0 && b.failed == nil && b.n < p.cfg.MaxBatch && ctx.Err() == nil {
			left := p.cfg.CommitInterval - time.Since(b.began)
			if left <= 0 {
				break
			}
			more := p.poll(ctx, sess, left, p.cfg.MaxBatch-b.n)
			if more == nil || more.IsClientClosed() {
				break
			}
			b.now = p.cfg.Now()
			p.handle(sess, b, more.Records(), nil)
		}
		if err := p.end(ctx, sess, b); err != nil {
			return err
		}
	}
	return nil
}

// poll waits up to wait for at most limit records. It returns nil when
// nothing arrived.
func (p *Processor) poll(ctx context.Context, sess *kgo.GroupTransactSession, wait time.Duration, limit int) kgo.Fetches {
	pctx, cancel := context.WithTimeout(ctx, max(wait, time.Millisecond))
	fs := sess.PollRecords(pctx, limit)
	cancel()
	if fs.IsClientClosed() {
		return fs
	}
	fs.EachError(func(t string, part int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return
		}
		p.log.Error("fetch failed", "topic", t, "partition", part, logkey.Error, err)
	})
	if fs.NumRecords() == 0 {
		return nil
	}
	return fs
}

// pollWait is how long the loop may wait for records: until the next timer
// is due, at most maxPollWait.
func (p *Processor) pollWait() time.Duration {
	wait := maxPollWait
	now := p.cfg.Now()
	p.mu.Lock()
	for _, part := range p.mu.parts {
		if at, ok := part.timers.next(); ok {
			wait = min(wait, at.Sub(now))
		}
	}
	p.mu.Unlock()
	return wait
}

// partTimer is a due timer of one partition.
type partTimer struct {
	part  int32
	timer machine.Timer
}

// dueTimers returns the timers due at now, up to MaxBatch, earliest
// partition number first, of the partitions the group client holds (owns).
func (p *Processor) dueTimers(cl *kgo.Client, now time.Time) []partTimer {
	p.mu.Lock()
	parts := slices.Collect(maps.Values(p.mu.parts))
	p.mu.Unlock()
	slices.SortFunc(parts, func(a, b *partition) int { return int(a.num) - int(b.num) })
	var out []partTimer
	for _, part := range parts {
		if !p.owns(cl, part.num) {
			continue
		}
		for _, t := range part.timers.due(now, p.cfg.MaxBatch-len(out)) {
			out = append(out, partTimer{part.num, t})
		}
	}
	return out
}

// handle applies records, then timers, to the batch.
func (p *Processor) handle(sess *kgo.GroupTransactSession, b *batch, records []*kgo.Record, timers []partTimer) {
	for _, r := range records {
		if b.failed != nil {
			return
		}
		b.n++
		var ev machine.Event
		switch r.Topic {
		case p.prefix.Requests():
			var problem string
			var ok bool
			ev, problem, ok = decodeRequest(r)
			if !ok {
				b.drops = append(b.drops, drop{reason: ReasonNoID, detail: problem, source: recordSource(r), partition: r.Partition})
				continue
			}
			if problem != "" {
				p.log.Warn("malformed request", logkey.Topic, r.Topic, logkey.Partition, r.Partition, logkey.Offset, r.Offset, logkey.Request, ev.Request, logkey.Problem, problem)
			}
			if ev.Kind == machine.EventStart {
				p.catchUpDefinitions(b.ctx, ev, r.Timestamp)
			}
		case p.prefix.Results():
			var problem string
			ev, problem = decodeResult(r)
			if problem != "" {
				p.log.Warn("malformed result", logkey.Topic, r.Topic, logkey.Partition, r.Partition, logkey.Offset, r.Offset, logkey.Request, ev.Request, logkey.Problem, problem)
			}
		default:
			continue
		}
		p.apply(sess, b, r.Partition, ev, recordSource(r), nil)
	}
	for _, t := range timers {
		if b.failed != nil {
			return
		}
		if b.timed == nil {
			b.timed = map[int32]bool{}
		}
		b.timed[t.part] = true
		src := fmt.Sprintf("timer/%d/%s/%s/%d/%d", t.part, t.timer.Request, t.timer.Step, t.timer.Attempt, t.timer.Kind)
		p.apply(sess, b, t.part, timerEvent(t.timer, t.part), src, &t.timer)
	}
}

// apply runs one event through the machine against the batch's overlay of
// partition part and produces its effects. src names the input, for
// poison tracking; fired is the timer the event came from, if any.
func (p *Processor) apply(sess *kgo.GroupTransactSession, b *batch, part int32, ev machine.Event, src string, fired *machine.Timer) {
	st := p.stage(sess.Client(), b, part)
	if st == nil {
		b.failed = fmt.Errorf("%w: partition %d", errNotOwned, part)
		return
	}
	p.st.events.Add(1)
	var started time.Time // of the attempt a result answers, for its duration
	if (b.obs != nil && ev.Kind == machine.EventResult) || (p.tracer != nil && (ev.Kind == machine.EventResult || ev.Kind == machine.EventTimer)) {
		started = attemptStarted(st, ev)
	}
	if p.tracer != nil && ev.Kind == machine.EventStart {
		ev.Trace, ev.TraceParent = p.tracer.Begin(ev.Trace)
	}
	eff := p.m.Apply(st, ev, b.now)
	recs := p.enc.records(part, &eff)
	if size, big := p.oversize(recs); big || p.poison[src] {
		sub, ok := oversizeEvent(ev, size, p.cfg.MaxPayload)
		if ok {
			eff = p.m.Apply(st, sub, b.now)
			recs = p.enc.records(part, &eff)
			_, big = p.oversize(recs)
		}
		if !ok || big {
			// Nothing sensible fits: drop the event rather than wedge
			// the partition on it forever.
			b.drops = append(b.drops, drop{reason: ReasonOversize, source: src, request: ev.Request, step: ev.Step, partition: part,
				detail: fmt.Sprintf("its effects make a record of about %d bytes, above the %d-byte limit", size, p.cfg.MaxPayload)})
			if fired != nil {
				st.timers = append(st.timers, timerOp{opFired, *fired})
			}
			return
		}
		p.log.Warn("effects exceed the payload limit; failing the step instead", logkey.Partition, part, logkey.Request, ev.Request, logkey.Step, ev.Step, logkey.Attempt, ev.Attempt, logkey.Source, src, "bytes", size, "limit", p.cfg.MaxPayload)
	}
	if eff.Reason != "" {
		b.drops = append(b.drops, p.dropOf(ev, eff, src, part))
	}
	if fired != nil {
		st.timers = append(st.timers, timerOp{opFired, *fired})
	}
	st.stage(&eff)
	for _, r := range recs {
		sess.Produce(b.ctx, r, b.promise(src))
	}
	if b.obs != nil && eff.Ignored == "" {
		observe(b.obs, st, ev, &eff, started, b.now)
	}
	if p.tracer != nil && eff.Ignored == "" {
		b.spans = traceSpans(b.spans, st, ev, &eff, started, b.now)
	}
}

// oversize reports the size of the largest record and whether it is above
// the payload limit.
func (p *Processor) oversize(recs []*kgo.Record) (int, bool) {
	largest := 0
	for _, r := range recs {
		largest = max(largest, recordSize(r))
	}
	return largest, largest > p.cfg.MaxPayload
}

// oversizeEvent returns the event to apply instead of ev when ev's effects
// do not fit: a result becomes a non-retryable step failure, so the request
// fails with a message saying why. Other events have no smaller form.
func oversizeEvent(ev machine.Event, size, limit int) (machine.Event, bool) {
	if ev.Kind != machine.EventResult {
		return ev, false
	}
	ev.Output = nil
	ev.Error = &schemas.StepError{
		Message: fmt.Sprintf("the step's result makes a record of about %d bytes, above the %d-byte limit", size, limit),
	}
	return ev, true
}

// end commits the batch (or aborts it when it failed) and, only once the
// broker confirmed the commit, merges its overlay into the committed state.
func (p *Processor) end(ctx context.Context, sess *kgo.GroupTransactSession, b *batch) error {
	// Ending waits for a heartbeat, which waits for any rebalance in
	// progress to finish: allow for a dead member's session to expire
	// and the group to rejoin.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.SessionTimeout+p.cfg.RebalanceTimeout+p.cfg.TxnTimeout)
	defer cancel()
	commit := b.failed == nil
	endStart := time.Now()
	if commit {
		if err := sess.Client().Flush(ectx); err != nil {
			commit = false
			b.failed = fmt.Errorf("flush: %w", err)
		}
	}
	b.mu.Lock()
	if b.produceErr != nil && b.failed == nil {
		b.failed = b.produceErr
	}
	if b.tooLarge != "" {
		p.poison[b.tooLarge] = true
	}
	b.mu.Unlock()
	commit = commit && b.failed == nil

	flushed := time.Now()
	committed, err := sess.End(p.fenceTimers(ectx, sess.Client(), b), kgo.TransactionEndTry(commit))
	if p.split != nil && committed && err == nil {
		now := time.Now()
		p.split.ended(flushed.Sub(endStart), now.Sub(flushed), now, p.log)
	}
	if err != nil || !committed {
		p.metrics.Aborted()
	}
	if err != nil {
		p.st.aborted.Add(1)
		if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
			return fmt.Errorf("stepwise: end transaction (is another replica running as %q?): %w", p.cfg.ReplicaID, err)
		}
		return fmt.Errorf("%w: end transaction: %v", errRestart, err)
	}
	if !committed {
		p.st.aborted.Add(1)
		why := "group rebalanced"
		if b.failed != nil {
			why = b.failed.Error()
		}
		p.log.Info("transaction aborted; its records will be consumed again", "records", b.n, "why", why)
		if applyAborted {
			p.merge(b) // the defect of builds tagged chaosbroken only
		}
		if b.n == 0 {
			// Timers only, fenced: this member has been dropped from the
			// group and learns of it at its next heartbeat. Do not spin
			// on the same timers until then.
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	}
	p.st.committed.Add(1)
	p.reportDrops(b)
	p.metrics.Committed(b.obs, b.n, time.Since(endStart))
	p.emitSpans(b)
	p.merge(b)
	return nil
}

// fenceTimers returns ctx set up so that a transaction that consumed no
// record still commits under the group generation that owns the partitions
// whose timers it fired. A transaction's offset commit is what fences a
// member the group has dropped (KIP-447: the coordinator refuses a stale
// generation and the transaction aborts); franz-go sends none when nothing
// was consumed, so a dropped member that has not heard of it yet could
// fire the timers of a partition its successor restored and fired too
// (a step timed out, a request failed, twice). The fence commits those
// partitions' inbox offsets again, unchanged.
func (p *Processor) fenceTimers(ctx context.Context, cl *kgo.Client, b *batch) context.Context {
	if len(b.timed) == 0 {
		return ctx
	}
	committed := cl.CommittedOffsets()
	fence := map[string]map[int32]kgo.EpochOffset{}
	for part := range b.timed {
		for _, topic := range []string{p.prefix.Requests(), p.prefix.Results()} {
			if eo, ok := committed[topic][part]; ok {
				if fence[topic] == nil {
					fence[topic] = map[int32]kgo.EpochOffset{}
				}
				fence[topic][part] = eo
			}
		}
	}
	if len(fence) == 0 {
		return ctx
	}
	return kgo.PreTxnCommitFnContext(ctx, func(req *kmsg.TxnOffsetCommitRequest) error {
		if len(req.Topics) > 0 {
			return nil // consumed offsets fence the transaction already
		}
		for topic, parts := range fence {
			rt := kmsg.NewTxnOffsetCommitRequestTopic()
			rt.Topic = topic
			for part, eo := range parts {
				rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch = part, eo.Offset, eo.Epoch
				rp.Metadata = &req.MemberID
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
		}
		return nil
	})
}

// merge makes a committed batch's overlay the partitions' committed state.
func (p *Processor) merge(b *batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for part, st := range b.parts {
		// A partition revoked (and maybe assigned again) since the
		// batch began has a new value or none: its next owner restored
		// it from the state topic, which already has this commit.
		if p.mu.parts[part] == st.base {
			st.commit()
			p.metrics.Partition(part, st.base.running, st.base.timers.len())
		}
	}
}

// withoutImplicitTxnPartitions caps the request versions so that the
// processor's transactions use the explicit AddPartitionsToTxn flow rather
// than the newer one where a produce adds its partition implicitly
// (KIP-890 part 2, on by default in Kafka 4). See
// Config.ExplicitTxnPartitions.
func withoutImplicitTxnPartitions() *kversion.Versions {
	v := kversion.Stable()
	v.SetMaxKeyVersion(int16(kmsg.Produce), 11)
	v.SetMaxKeyVersion(int16(kmsg.EndTxn), 4)
	v.SetMaxKeyVersion(int16(kmsg.TxnOffsetCommit), 4)
	return v
}
