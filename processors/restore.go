package processors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/processors/machine"
)

// restorePoll bounds one poll of a restore. A partition whose last stable
// offset has passed its target and that delivers nothing for this long is
// complete (the fallback of the restore rule; see restoreState).
const restorePoll = 250 * time.Millisecond

// restoreResult is what one restore read.
type restoreResult struct {
	parts    map[int32]*partition
	records  int // state records read (tombstones included)
	bad      int // records that could not be decoded, skipped
	duration time.Duration
}

// restoreState rebuilds the committed state of partitions parts of the
// state topic, reading each read_committed from its start up to the high
// watermark it has when restoreState is called (the target). opts are the
// connection options; restoreState builds its own short-lived client so
// that the group client's fetch positions are left alone.
//
// When is a partition complete? The tail below the target may be control
// records (transaction markers) or records of aborted transactions, which a
// read_committed consumer never hands over, or the records of a
// transaction still open (a dead replica's, until the broker aborts it at
// its timeout): stopping at the last stable offset would miss such a
// transaction if it commits after all. So the restore client also keeps
// control records, which advance its position over every decided offset,
// and a partition is complete once it has seen an offset at or past
// target-1. Compaction may have removed the records at the very end of a
// partition (Kafka keeps the active segment, kfake the last batch, so this
// is rare); as a fallback a partition is also complete once its last stable
// offset is at or past the target and a further poll delivers nothing.
func restoreState(ctx context.Context, opts []kgo.Opt, topic string, parts []int32, log *slog.Logger) (*restoreResult, error) {
	start := time.Now()
	res := &restoreResult{parts: map[int32]*partition{}}
	for _, p := range parts {
		res.parts[p] = newPartition(p)
	}
	if len(parts) == 0 {
		return res, nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(opts),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(50*time.Millisecond),
	)...)
	if err != nil {
		return nil, fmt.Errorf("stepwise: restore client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("stepwise: restore %s: high watermarks: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("stepwise: restore %s: start offsets: %w", topic, err)
	}

	type progress struct {
		target    int64 // high watermark at the start of the restore
		lsoPassed bool  // the last stable offset was seen at or past target
	}
	pending := map[int32]*progress{}
	consume := map[int32]kgo.Offset{}
	for _, p := range parts {
		end, ok := ends.Lookup(topic, p)
		if !ok {
			return nil, fmt.Errorf("stepwise: restore %s: partition %d does not exist", topic, p)
		}
		if st, ok := starts.Lookup(topic, p); ok && st.Offset >= end.Offset {
			continue // empty
		}
		pending[p] = &progress{target: end.Offset}
		consume[p] = kgo.NewOffset().AtStart()
	}
	if len(consume) == 0 {
		res.duration = time.Since(start)
		return res, nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: consume})

	done := func(p int32) {
		delete(pending, p)
		cl.RemoveConsumePartitions(map[string][]int32{topic: {p}})
	}
	for len(pending) > 0 {
		pctx, cancel := context.WithTimeout(ctx, restorePoll)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var fetchErr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				fetchErr = fmt.Errorf("stepwise: restore %s partition %d: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			return nil, fetchErr
		}
		seen := map[int32]bool{}
		fs.EachRecord(func(r *kgo.Record) {
			pr := pending[r.Partition]
			if r.Topic != topic || pr == nil {
				return
			}
			seen[r.Partition] = true
			if r.Offset >= pr.target {
				// Written after the restore began: not ours to read
				// (only this replica writes the partition from now).
				done(r.Partition)
				return
			}
			if !r.Attrs.IsControl() {
				res.records++
				if err := loadRecord(res.parts[r.Partition], r); err != nil {
					res.bad++
					log.Error("skipping unreadable state record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "key", string(r.Key), "err", err)
				}
			}
			if r.Offset+1 >= pr.target {
				done(r.Partition)
			}
		})
		var check bool
		for p, pr := range pending {
			if seen[p] {
				continue
			}
			if pr.lsoPassed {
				done(p)
				continue
			}
			check = true
		}
		if !check {
			continue
		}
		lsos, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			return nil, fmt.Errorf("stepwise: restore %s: last stable offsets: %w", topic, err)
		}
		for p, pr := range pending {
			if l, ok := lsos.Lookup(topic, p); ok && l.Err == nil && l.Offset >= pr.target {
				pr.lsoPassed = true
			}
		}
	}
	res.duration = time.Since(start)
	return res, nil
}

// loadRecord applies one state record to p.
func loadRecord(p *partition, r *kgo.Record) error {
	if r.Value == nil {
		p.load(string(r.Key), nil)
		return nil
	}
	rec, err := machine.Decode(r.Value)
	if err != nil {
		return err
	}
	p.load(string(r.Key), rec)
	return nil
}
