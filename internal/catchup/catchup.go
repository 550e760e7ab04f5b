// Package catchup is the one rule by which Stepwise reads a topic "to where
// it stood": the state topic when a processor restores its partitions, when
// a view (`stepwise list`, the API) starts, and when `stepwise get` looks a
// request up. It sits on the read side of the state topic, between Kafka and
// whoever rebuilds state from it; it decodes nothing.
//
// # The rule
//
// Each partition is read read_committed from its start up to its target:
// the high watermark taken when the read began (Targets). The tail below a
// target may be transaction markers, records of aborted transactions (which
// read_committed never hands over), or the records of a transaction still
// open — a dead processor's, until the broker aborts it at its timeout, or
// commits it if the commit was already under way. Stopping at the last
// stable offset would miss such a transaction if it commits after all. So
// the client keeps control records, which move the position over every
// decided offset, and a partition is complete once a record (data or
// control) at or past target-1 was seen.
//
// Compaction may remove the records at the very end of a partition (Kafka
// keeps the active segment and kfake the last batch, so this is rare), and
// some brokers hand over no markers of aborted transactions; as a fallback
// a partition is also complete once its last stable offset is at or past
// its target and it has delivered nothing for FallbackIdle.
//
// Read hands over every committed record it reads, those past a target
// included: a transaction decided during the read may straddle the target,
// and half of a committed transaction is never a state anyone wrote.
package catchup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// PollWait bounds one poll while a catch-up is pending: a partition that
// delivers nothing for this long is idle, which is when the fallback (the
// last stable offset) is looked at.
const PollWait = 250 * time.Millisecond

// FallbackIdle is how long a partition whose last stable offset passed its
// target must have delivered nothing before the fallback completes it.
// Silence is weak evidence: a fetch that stalls (a loaded machine, a broker
// that has just restarted, a large partition) delivers nothing too, and a
// partition completed too early is restored without the records it still
// had to deliver. At 1 s that happened, so it is long: on Kafka 4.x and on
// kfake every read so far ended on a record at its target (markers of
// aborted transactions included), and the fallback is only a way out for
// a broker that hands over no markers or a tail removed by compaction.
const FallbackIdle = 30 * time.Second

// ClientOpts are the consumer options the rule needs: read_committed, with
// control records kept. Add them to the client that reads the topic.
func ClientOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(50 * time.Millisecond),
	}
}

// Targets returns the target of each partition of parts of topic (every
// partition when parts is nil): its high watermark, or 0 when it holds no
// record (start offset at the high watermark), as nothing is to be waited
// for there. A partition of parts that does not exist is an error; a topic
// that does not exist wraps kerr.UnknownTopicOrPartition.
func Targets(ctx context.Context, adm *kadm.Client, topic string, parts []int32) (map[int32]int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("stepwise: %s: high watermarks: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("stepwise: %s: start offsets: %w", topic, err)
	}
	if len(ends[topic]) == 0 {
		return nil, fmt.Errorf("stepwise: %s: %w", topic, kerr.UnknownTopicOrPartition)
	}
	if parts == nil {
		for p := range ends[topic] {
			parts = append(parts, p)
		}
	}
	targets := map[int32]int64{}
	for _, p := range parts {
		end, ok := ends.Lookup(topic, p)
		if !ok {
			return nil, fmt.Errorf("stepwise: %s: partition %d does not exist", topic, p)
		}
		targets[p] = end.Offset
		if st, ok := starts.Lookup(topic, p); ok && st.Offset >= end.Offset {
			targets[p] = 0 // empty
		}
	}
	return targets, nil
}

// Tracker follows the read of one topic's partitions up to their targets.
// The poll loop that reads them hands it every record of the topic
// (Observe) and ends each poll with EndPoll; Done says when every
// partition is complete. It is not safe for concurrent use.
type Tracker struct {
	topic   string
	pending map[int32]*target
	seen    map[int32]bool // partitions that delivered a record in this poll
	// finished collects partitions completed since the last Finished.
	finished []int32
	// byFallback lists the partitions the fallback completed.
	byFallback []int32
	now        func() time.Time
}

type target struct {
	offset    int64     // the high watermark when the read began
	lsoPassed bool      // the last stable offset was seen at or past offset
	active    time.Time // when the partition last delivered a record, or the read began
}

// NewTracker tracks the read of topic's partitions up to targets (from
// Targets); a partition of target 0 is complete from the start.
func NewTracker(topic string, targets map[int32]int64) *Tracker {
	t := &Tracker{topic: topic, pending: map[int32]*target{}, seen: map[int32]bool{}, now: time.Now}
	for p, off := range targets {
		if off > 0 {
			t.pending[p] = &target{offset: off, active: t.now()}
		}
	}
	return t
}

// Done reports whether every partition is complete.
func (t *Tracker) Done() bool { return len(t.pending) == 0 }

// Observe notes a record of the topic, control records included, and
// reports whether it lies below its partition's target: part of what the
// catch-up reads, rather than written after it began (or of a partition
// already complete or not tracked).
func (t *Tracker) Observe(r *kgo.Record) (below bool) {
	if r.Topic != t.topic {
		return false
	}
	tg := t.pending[r.Partition]
	if tg == nil {
		return false
	}
	t.seen[r.Partition] = true
	tg.active = t.now()
	below = r.Offset < tg.offset
	if r.Offset+1 >= tg.offset {
		t.complete(r.Partition)
	}
	return below
}

// EndPoll ends a poll and reports whether a pending partition delivered
// nothing in it (idle). An idle partition whose last stable offset had
// passed its target and that delivered nothing for FallbackIdle is
// complete; for any other idle one the last stable offsets are looked up
// with adm, for the next poll.
func (t *Tracker) EndPoll(ctx context.Context, adm *kadm.Client) (idle bool, err error) {
	lookup := false
	for p, tg := range t.pending {
		if t.seen[p] {
			continue
		}
		idle = true
		if tg.lsoPassed && t.now().Sub(tg.active) >= FallbackIdle {
			t.complete(p)
			t.byFallback = append(t.byFallback, p)
			continue
		}
		lookup = true
	}
	clear(t.seen)
	if !lookup {
		return idle, nil
	}
	lsos, err := adm.ListCommittedOffsets(ctx, t.topic)
	if err != nil {
		return idle, fmt.Errorf("stepwise: %s: last stable offsets: %w", t.topic, err)
	}
	for p, tg := range t.pending {
		if o, ok := lsos.Lookup(t.topic, p); ok && o.Err == nil && o.Offset >= tg.offset {
			tg.lsoPassed = true
		}
	}
	return idle, nil
}

// Finished returns the partitions completed since it was last called, so
// that a reader can stop fetching them.
func (t *Tracker) Finished() []int32 {
	f := t.finished
	t.finished = nil
	return f
}

func (t *Tracker) complete(p int32) {
	delete(t.pending, p)
	t.finished = append(t.finished, p)
}

// Stats are the figures of one Read.
type Stats struct {
	Records  int // records handed to fn (tombstones included)
	Duration time.Duration
	// Fallback lists the partitions completed by the fallback rather
	// than by a record at their target.
	Fallback []int32
}

// Read reads the partitions parts of topic (every partition when nil) by
// the rule, up to the high watermark each has when Read is called, and
// hands every data record below it to fn, in offset order per partition.
// opts are the connection options; Read builds its own short-lived client,
// so the fetch positions of the caller's clients are left alone.
func Read(ctx context.Context, opts []kgo.Opt, topic string, parts []int32, fn func(*kgo.Record)) (Stats, error) {
	return read(ctx, opts, topic, func(adm *kadm.Client) (map[int32]int64, error) {
		return Targets(ctx, adm, topic, parts)
	}, fn)
}

// ReadTo is Read with targets taken earlier (from Targets).
func ReadTo(ctx context.Context, opts []kgo.Opt, topic string, targets map[int32]int64, fn func(*kgo.Record)) (Stats, error) {
	return read(ctx, opts, topic, func(*kadm.Client) (map[int32]int64, error) { return targets, nil }, fn)
}

func read(ctx context.Context, opts []kgo.Opt, topic string, targets func(*kadm.Client) (map[int32]int64, error), fn func(*kgo.Record)) (Stats, error) {
	start := time.Now()
	cl, err := kgo.NewClient(append(slices.Clone(opts), ClientOpts()...)...)
	if err != nil {
		return Stats{}, fmt.Errorf("stepwise: %s reader: %w", topic, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tg, err := targets(adm)
	if err != nil {
		return Stats{}, err
	}
	st, err := readTo(ctx, cl, adm, topic, tg, fn)
	st.Duration = time.Since(start)
	return st, err
}

// idlePoll, when set (tests), is called after every poll in which some
// pending partition delivered nothing.
var idlePoll func()

func readTo(ctx context.Context, cl *kgo.Client, adm *kadm.Client, topic string, targets map[int32]int64, fn func(*kgo.Record)) (Stats, error) {
	var st Stats
	tr := NewTracker(topic, targets)
	consume := map[int32]kgo.Offset{}
	for p := range tr.pending {
		consume[p] = kgo.NewOffset().AtStart()
	}
	if len(consume) == 0 {
		return st, nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: consume})
	for !tr.Done() {
		pctx, cancel := context.WithTimeout(ctx, PollWait)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return st, err
		}
		var fetchErr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				fetchErr = fmt.Errorf("stepwise: read %s partition %d: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			return st, fetchErr
		}
		fs.EachRecord(func(r *kgo.Record) {
			tr.Observe(r)
			if r.Attrs.IsControl() {
				return
			}
			// Records past a target are handed over too: they are
			// committed, and may belong to a transaction that began
			// below the target. Leaving them out would keep half of
			// it: a restore would lose state records whose tasks and
			// consumed offsets were committed with them.
			st.Records++
			fn(r)
		})
		idle, err := tr.EndPoll(ctx, adm)
		if err != nil {
			return st, err
		}
		if idle && idlePoll != nil {
			idlePoll()
		}
		if f := tr.Finished(); len(f) > 0 {
			cl.RemoveConsumePartitions(map[string][]int32{topic: f})
		}
	}
	st.Fallback = tr.byFallback
	return st, nil
}
