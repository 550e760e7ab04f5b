package processors

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// commitSplit measures what one commit of the loop costs, phase by phase:
// the flush of the batch's records, then inside the group session's End
// the requests it sends (AddOffsetsToTxn, TxnOffsetCommit, the Heartbeat
// it forces to learn whether the group rebalanced, EndTxn), and the time
// from the end of one commit to the first records of the next batch. The
// request times come from the client's broker hook (time from writing the
// request to reading its answer), summed per request kind.
//
// It is on only when the processor's logger is enabled at debug level
// (it then logs a summary every commitSplitEvery) or a test asked for it;
// off, the loop pays a nil check per commit.
type commitSplit struct {
	mu struct {
		sync.Mutex
		commits  int
		flush    time.Duration
		end      time.Duration
		gap      time.Duration // end of a commit to the next batch's begin
		lastEnd  time.Time
		requests map[int16]reqSum
		logged   time.Time
	}
}

type reqSum struct {
	n     int
	total time.Duration
}

// commitSplitEvery is how often the debug summary is logged.
const commitSplitEvery = 5 * time.Second

// commitSplitKeys are the request kinds the split reports.
var commitSplitKeys = []int16{int16(kmsg.Produce), int16(kmsg.AddPartitionsToTxn), int16(kmsg.AddOffsetsToTxn),
	int16(kmsg.TxnOffsetCommit), int16(kmsg.Heartbeat), int16(kmsg.EndTxn)}

func newCommitSplit() *commitSplit {
	c := &commitSplit{}
	c.mu.requests = map[int16]reqSum{}
	return c
}

// OnBrokerE2E implements kgo.HookBrokerE2E.
func (c *commitSplit) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if e2e.Err() != nil {
		return
	}
	c.mu.Lock()
	s := c.mu.requests[key]
	s.n++
	s.total += e2e.DurationE2E()
	c.mu.requests[key] = s
	c.mu.Unlock()
}

// began notes the begin of a batch at t.
func (c *commitSplit) began(t time.Time) {
	c.mu.Lock()
	if !c.mu.lastEnd.IsZero() {
		c.mu.gap += t.Sub(c.mu.lastEnd)
	}
	c.mu.Unlock()
}

// ended notes a commit that flushed in flush and ended in end, at now.
func (c *commitSplit) ended(flush, end time.Duration, now time.Time, log *slog.Logger) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.commits++
	c.mu.flush += flush
	c.mu.end += end
	c.mu.lastEnd = now
	if log == nil || now.Sub(c.mu.logged) < commitSplitEvery {
		return
	}
	c.mu.logged = now
	attrs := []any{"commits", c.mu.commits}
	for k, v := range c.splitLocked() {
		attrs = append(attrs, k+"_ms", v)
	}
	log.Debug("commit cost per commit", attrs...)
}

// split returns the mean milliseconds per commit of each phase and
// request kind, keyed by name (flush, end, gap, and the request names).
func (c *commitSplit) split() map[string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.splitLocked()
}

func (c *commitSplit) splitLocked() map[string]float64 {
	n := float64(max(c.mu.commits, 1))
	per := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / n }
	out := map[string]float64{"flush": per(c.mu.flush), "end": per(c.mu.end), "gap": per(c.mu.gap)}
	for _, k := range commitSplitKeys {
		out[kmsg.NameForKey(k)] = per(c.mu.requests[k].total)
	}
	return out
}

// newCommitSplitIf returns a commitSplit when on or when log is enabled at
// debug level, else nil.
func newCommitSplitIf(on bool, log *slog.Logger) *commitSplit {
	if on || log.Enabled(context.Background(), slog.LevelDebug) {
		return newCommitSplit()
	}
	return nil
}
