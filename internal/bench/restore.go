package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/processors"
	"github.com/stepwise-run/stepwise/topology"
)

// restore loads n linear3 requests that stay in flight (no worker runs, so
// each waits on its first task), measures the replica holding them, stops
// it, and times a fresh replica's restore of every partition.
//
// The first replica leaves the group cleanly, so the figure is the restore
// itself, not the wait for a dead member's session and transaction to time
// out (the fault tests measure that).
func (r *runner) restore(ctx context.Context, n int) (*Restore, error) {
	sc, err := ScenarioByName("linear3", 0)
	if err != nil {
		return nil, err
	}
	p := r.prefix("restore", SystemStepwise)
	if err := r.createTopics(ctx, sc, p); err != nil {
		return nil, err
	}
	holder, err := r.startProcessor(ctx, sc, p, "bench-holder")
	if err != nil {
		return nil, err
	}
	defer func() {
		if holder != nil {
			_ = holder.stop()
		}
	}()
	group := processors.GroupID(p)
	if err := r.waitGroupStable(ctx, p, group, []system{holder}, 60*time.Second); err != nil {
		return nil, err
	}
	res := &Restore{InFlight: n}
	prod, err := r.client(p, kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	in := sc.Input(0)
	for i := range n {
		id := "hold-" + strconv.Itoa(i)
		v := startValue("linear3", id, in)
		prod.Produce(ctx, &kgo.Record{Topic: p.Requests(), Key: []byte(id), Value: v}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		prod.Close()
		return nil, err
	}
	prod.Close()
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "  restore: %d starts produced in %.1fs; waiting for the processor\n", n, time.Since(t0).Seconds())
	}
	if err := r.waitConsumed(ctx, p, group, int64(n), 5*time.Minute); err != nil {
		return nil, err
	}
	res.LoadS = time.Since(t0).Seconds()
	u := holder.usage()
	res.RSSAtInFlight, res.PeakRSS, res.Shared = u.rss, u.peakRSS, u.shared
	if err := holder.stop(); err != nil {
		return res, err
	}
	holder = nil
	st, err := r.readState(ctx, p)
	if err != nil {
		return res, err
	}
	res.StateBytes = float64(st.Bytes) / float64(max(st.Requests, 1))

	start := time.Now()
	fresh, err := r.startProcessor(ctx, sc, p, "bench-fresh")
	if err != nil {
		return res, err
	}
	defer func() { _ = fresh.stop() }()
	deadline := start.Add(5 * time.Minute)
	for {
		f := fresh.restored()
		// The fresh replica joins alone, so its first assignment holds
		// every partition and its first restore is the whole takeover.
		if f.restores > 0 {
			at := f.at
			if at.IsZero() {
				at = time.Now()
			}
			res.RestoreS, res.TakeoverS, res.RestoredRecords = f.duration.Seconds(), at.Sub(start).Seconds(), f.records
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("stepwise: the fresh replica did not restore within 5 minutes (%+v)", f)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	if u := fresh.usage(); u.rss > 0 {
		res.RestoredRSS = u.rss
	}
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "  restore: %d records in %.2fs (takeover %.2fs)\n", res.RestoredRecords, res.RestoreS, res.TakeoverS)
	}
	return res, nil
}

// waitConsumed waits until group has committed offsets summing to n on
// the requests topic: every start is in the state.
func (r *runner) waitConsumed(ctx context.Context, p topology.Prefix, group string, n int64, timeout time.Duration) error {
	cl, err := r.client(p)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(timeout)
	var got int64
	for time.Now().Before(deadline) {
		offs, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			got = 0
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Topic == p.Requests() {
					got += o.At
				}
			})
			if got >= n {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("stepwise: the processor consumed %d of %d starts within %s", got, n, timeout)
}
