package definitions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/internal/logkey"
	"github.com/stepwise-run/stepwise/topology"
)

// TransactionalID is the one transactional id every publisher of an
// installation uses: initialising it fences any other publisher's open
// transaction, so versions are handed out one publisher at a time.
func TransactionalID(p topology.Prefix) string { return string(p) + "definitions-publisher" }

// Outcome is what publishing did for one workflow.
type Outcome struct {
	Workflow  string
	Version   int    // the version written, or the newest one when Unchanged
	Hash      string // of the version
	Unchanged bool   // the content equals the newest version's: nothing written
	Deleted   bool   // a deletion was written
}

// ErrNotApplied is returned by Publish for a deletion of a workflow that
// has no live version.
var ErrNotApplied = errors.New("stepwise: workflow not applied")

// Publish writes a new version of every workflow of set whose content
// differs from its newest version, and a deletion of every workflow named
// in deletes, in one transaction. now stamps the records. opts are the
// connection options (brokers, TLS, SASL).
//
// Another publisher initialising the same transactional id meanwhile fences
// this one; Publish then reads the topic again and retries, a few times.
func Publish(ctx context.Context, opts []kgo.Opt, prefix topology.Prefix, set *topology.Set, deletes []string, now time.Time) ([]Outcome, error) {
	for attempt := 1; ; attempt++ {
		out, err, retry := publishOnce(ctx, opts, prefix, set, deletes, now)
		if !retry || attempt == maxPublishAttempts || ctx.Err() != nil {
			return out, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
}

// maxPublishAttempts bounds Publish's retries after being fenced.
const maxPublishAttempts = 8

// publishOnce is one attempt of Publish; retry says whether the error was
// the transaction's (worth another attempt) rather than the input's.
func publishOnce(ctx context.Context, opts []kgo.Opt, prefix topology.Prefix, set *topology.Set, deletes []string, now time.Time) (_ []Outcome, _ error, retry bool) {
	cl, err := kgo.NewClient(append(slices.Clone(opts),
		kgo.TransactionalID(TransactionalID(prefix)),
		kgo.TransactionTimeout(10*time.Second),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		return nil, fmt.Errorf("stepwise: definitions client: %w", err), false
	}
	defer cl.Close()
	// Fence first, read second: see the package comment.
	if _, _, err := cl.ProducerID(ctx); err != nil {
		return nil, fmt.Errorf("stepwise: definitions publisher: %w", err), true
	}
	cat := NewCatalog()
	if err := ReadAll(ctx, opts, prefix, cat, nil); err != nil {
		return nil, err, true
	}
	var out []Outcome
	var recs []*Record
	for _, name := range set.Order {
		w := set.Workflows[name]
		hash := HashOf(w.Source)
		next := 1
		if e, ok := cat.Newest(name); ok {
			if !e.Deleted && e.Hash == hash {
				out = append(out, Outcome{Workflow: name, Version: e.Version, Hash: hash, Unchanged: true})
				continue
			}
			next = e.Version + 1
		}
		recs = append(recs, &Record{Workflow: name, Version: next, Hash: hash, Source: string(w.Source), File: w.File, Applied: now.UTC()})
		out = append(out, Outcome{Workflow: name, Version: next, Hash: hash})
	}
	for _, name := range deletes {
		e, ok := cat.Newest(name)
		if !ok || e.Deleted {
			return nil, fmt.Errorf("%w: %q has no live version to delete (known: %v)", ErrNotApplied, name, cat.Names()), false
		}
		recs = append(recs, &Record{Workflow: name, Version: e.Version + 1, Deleted: true, Applied: now.UTC()})
		out = append(out, Outcome{Workflow: name, Version: e.Version + 1, Deleted: true})
	}
	if len(recs) == 0 {
		return out, nil, false
	}
	if err := cl.BeginTransaction(); err != nil {
		return nil, fmt.Errorf("stepwise: definitions transaction: %w", err), true
	}
	var produceErr error
	var mu sync.Mutex
	for _, r := range recs {
		cl.Produce(ctx, &kgo.Record{Topic: prefix.Definitions(), Key: []byte(KeyOf(r.Workflow, r.Version)), Value: Encode(r)}, func(_ *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil && produceErr == nil {
				produceErr = err
			}
		})
	}
	flushErr := cl.Flush(ctx)
	commit := kgo.TryCommit
	if flushErr != nil || produceErr != nil {
		commit = kgo.TryAbort
	}
	if err := cl.EndTransaction(ctx, commit); err != nil {
		return nil, fmt.Errorf("stepwise: commit definitions (another apply running at the same time? try again): %w", err), true
	}
	if err := errors.Join(flushErr, produceErr); err != nil {
		return nil, fmt.Errorf("stepwise: publish definitions to %s: %w", prefix.Definitions(), err), true
	}
	return out, nil, false
}

// ReadAll reads the definitions topic read_committed from its start to
// the end it had when ReadAll was called, adding every record to cat.
// Records that do not decode are logged (when log is not nil) and
// skipped.
func ReadAll(ctx context.Context, opts []kgo.Opt, prefix topology.Prefix, cat *Catalog, log *slog.Logger) error {
	f, err := NewFollower(opts, prefix, cat, log)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync(ctx)
}

// Follower keeps a Catalog in step with the definitions topic: it reads
// the topic from its start and then follows it, read_committed.
//
// Goroutines: Run (the caller's) polls and adds to the catalogue; Sync,
// from any goroutine, waits for Run to pass the topic's current end.
type Follower struct {
	cl    *kgo.Client
	adm   *kadm.Client
	topic string
	cat   *Catalog
	log   *slog.Logger

	mu struct {
		sync.Mutex
		// next is, per partition, the offset after the last record
		// (control records included) Run has handled.
		next    map[int32]int64
		running bool
	}
	bad, added uint64 // Run only
}

// NewFollower returns a follower of prefix's definitions topic into cat.
// It does not connect until Run or Sync.
func NewFollower(opts []kgo.Opt, prefix topology.Prefix, cat *Catalog, log *slog.Logger) (*Follower, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	topic := prefix.Definitions()
	cl, err := kgo.NewClient(append(slices.Clone(opts),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.MetadataMaxAge(10*time.Second),
	)...)
	if err != nil {
		return nil, fmt.Errorf("stepwise: definitions follower: %w", err)
	}
	f := &Follower{cl: cl, adm: kadm.NewClient(cl), topic: topic, cat: cat, log: log}
	f.mu.next = map[int32]int64{}
	return f, nil
}

// Close releases the follower's connections.
func (f *Follower) Close() { f.cl.Close() }

// Run follows the topic until ctx is done.
func (f *Follower) Run(ctx context.Context) error {
	f.mu.Lock()
	f.mu.running = true
	f.mu.Unlock()
	for ctx.Err() == nil {
		f.poll(ctx)
	}
	return nil
}

func (f *Follower) poll(ctx context.Context) {
	fs := f.cl.PollFetches(ctx)
	if fs.IsClientClosed() {
		<-ctx.Done()
		return
	}
	fs.EachError(func(t string, p int32, err error) {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			f.log.Warn("definitions fetch failed", "topic", t, "partition", p, logkey.Error, err)
		}
	})
	fs.EachRecord(func(r *kgo.Record) {
		if !r.Attrs.IsControl() && r.Value != nil {
			f.add(r)
		}
		f.mu.Lock()
		f.mu.next[r.Partition] = max(f.mu.next[r.Partition], r.Offset+1)
		f.mu.Unlock()
	})
}

func (f *Follower) add(r *kgo.Record) {
	rec, err := Decode(string(r.Key), r.Value)
	if err != nil {
		f.bad++
		f.log.Error("skipping unreadable definition record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "key", string(r.Key), logkey.Error, err)
		return
	}
	changed, err := f.cat.Add(rec)
	if err != nil {
		f.log.Error("refusing definition record", "partition", r.Partition, "offset", r.Offset, logkey.Error, err)
		return
	}
	if changed {
		f.added++
		f.log.Info("definition version added", "workflow", rec.Workflow, "version", rec.Version, "hash", rec.Hash, "deleted", rec.Deleted)
	}
}

// Sync returns once every record committed to the topic before the call
// is in the catalogue. Without Run on another goroutine it reads itself.
//
// A partition is caught up once the follower has handled the record just
// before the end offset taken at the call (control records count, so a
// commit marker at the tail is passed), or, should compaction have removed
// the tail, once the last stable offset has reached that end and a second
// look after a poll still finds the follower behind.
func (f *Follower) Sync(ctx context.Context) error {
	ends, err := f.adm.ListEndOffsets(ctx, f.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("stepwise: definitions topic %s: end offsets (does it exist? see 'stepwise topics'): %w", f.topic, err)
	}
	starts, err := f.adm.ListStartOffsets(ctx, f.topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("stepwise: definitions topic %s: start offsets: %w", f.topic, err)
	}
	target := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if st, ok := starts.Lookup(f.topic, o.Partition); ok && st.Offset >= o.Offset {
			return // empty
		}
		target[o.Partition] = o.Offset
	})
	f.mu.Lock()
	running := f.mu.running
	f.mu.Unlock()
	lsoChecks := 0
	for {
		if f.caughtUp(target) {
			return nil
		}
		if !running {
			pctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
			f.poll(pctx)
			cancel()
		} else {
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("stepwise: reading definitions: %w", err)
		}
		lsoChecks++
		if lsoChecks%25 != 0 {
			continue
		}
		lsos, err := f.adm.ListCommittedOffsets(ctx, f.topic)
		if err != nil {
			continue
		}
		for p, end := range target {
			if l, ok := lsos.Lookup(f.topic, p); ok && l.Err == nil && l.Offset >= end && lsoChecks >= 50 {
				f.mu.Lock()
				f.mu.next[p] = max(f.mu.next[p], end)
				f.mu.Unlock()
			}
		}
	}
}

func (f *Follower) caughtUp(target map[int32]int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, end := range target {
		if f.mu.next[p] < end {
			return false
		}
	}
	return true
}
