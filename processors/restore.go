package processors

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/internal/catchup"
	"github.com/stepwise-run/stepwise/internal/logkey"
	"github.com/stepwise-run/stepwise/schemas"
)

// restoreResult is what one restore read.
type restoreResult struct {
	parts    map[int32]*partition
	records  int // state records read (tombstones included)
	bad      int // records that could not be decoded, skipped
	duration time.Duration
}

// restoreState rebuilds the committed state of partitions parts of the
// state topic, read by the catch-up rule (package catchup): each
// read_committed from its start up to the high watermark it has when
// restoreState is called, waiting for a transaction still open below it
// (a dead replica's) to be decided. opts are the connection options; the
// reader builds its own short-lived client, so the group client's fetch
// positions are left alone.
func restoreState(ctx context.Context, opts []kgo.Opt, topic string, parts []int32, log *slog.Logger) (*restoreResult, error) {
	res := &restoreResult{parts: map[int32]*partition{}}
	for _, p := range parts {
		res.parts[p] = newPartition(p)
	}
	if len(parts) == 0 {
		return res, nil
	}
	st, err := catchup.Read(ctx, opts, topic, parts, func(r *kgo.Record) {
		if err := loadRecord(res.parts[r.Partition], r); err != nil {
			res.bad++
			log.Error("skipping unreadable state record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "key", string(r.Key), logkey.Error, err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("stepwise: restore: %w", err)
	}
	res.records, res.duration = st.Records, st.Duration
	if len(st.Fallback) > 0 {
		log.Warn("restore completed partitions by the last-stable-offset fallback", "partitions", st.Fallback)
	}
	return res, nil
}

// loadRecord applies one state record to p.
func loadRecord(p *partition, r *kgo.Record) error {
	if r.Value == nil {
		p.load(string(r.Key), nil)
		return nil
	}
	rec, err := schemas.DecodeRecord(r.Value)
	if err != nil {
		return err
	}
	p.load(string(r.Key), rec)
	return nil
}
