package processors

import (
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/internal/logkey"
	"github.com/stepwise-run/stepwise/processors/machine"
	"github.com/stepwise-run/stepwise/schemas"
)

// Reasons the runtime gives for inputs that never reach the machine, or
// whose effects it cannot write. The machine's own are machine.Reason*.
const (
	// ReasonNoID: a requests record with neither an id in its body nor a
	// key; there is nobody to answer.
	ReasonNoID machine.Reason = "no_id"
	// ReasonWrongPartition: a result that arrived on a partition other
	// than its request's home partition (this replica holds the request
	// on another one); the worker ignored stepwise-reply-partition.
	ReasonWrongPartition machine.Reason = "wrong_partition"
	// ReasonOversize: an event whose effects do not fit the payload limit
	// even in their smallest form.
	ReasonOversize machine.Reason = "oversize"
)

// drop is one consumed input that changed no state, noted while its batch
// is open and reported (logged and counted) only when the batch commits,
// so that an input consumed again after an abort is reported once.
type drop struct {
	reason    machine.Reason
	detail    string
	source    string // topic/partition/offset, or timer/...
	request   string
	step      string
	attempt   int
	partition int32
}

// routine reasons are what at-least-once delivery and timers produce in
// normal operation; they are logged at Debug (timers) or Info, the others
// (a client's or a worker's fault) at Warn.
func (d drop) level() slog.Level {
	switch d.reason {
	case machine.ReasonStaleTimer:
		return slog.LevelDebug
	case machine.ReasonDuplicateStart, machine.ReasonStaleResult, machine.ReasonFinishedRequest,
		machine.ReasonUnknownInstance, machine.ReasonCancelIgnored, machine.ReasonDuplicateSignal,
		machine.ReasonStaleHeartbeat:
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

// dropCounts counts the processor's dropped inputs by reason for Stats
// (tests, the bench); reportDrops feeds the same drops, at the same moment,
// to stepwise_inputs_dropped_total{topic,reason} of package metrics.
type dropCounts struct {
	mu sync.Mutex
	n  map[machine.Reason]uint64
}

func (c *dropCounts) add(r machine.Reason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[machine.Reason]uint64{}
	}
	c.n[r]++
}

func (c *dropCounts) snapshot() map[machine.Reason]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// reportDrops logs and counts the drops of a committed batch.
func (p *Processor) reportDrops(b *batch) {
	for _, d := range b.drops {
		p.drops.add(d.reason)
		p.metrics.Dropped(sourceKind(d.source), string(d.reason))
		p.log.Log(b.ctx, d.level(), "input dropped", logkey.Reason, string(d.reason), "detail", d.detail,
			logkey.Source, d.source, logkey.Request, d.request, logkey.Step, d.step, logkey.Attempt, d.attempt, logkey.Partition, d.partition)
	}
}

// dropOf describes an event the machine ignored. A result for a request
// this partition does not hold, which this replica holds on another
// partition, was sent to the wrong partition.
func (p *Processor) dropOf(ev machine.Event, eff machine.Effects, src string, part int32) drop {
	d := drop{reason: eff.Reason, detail: eff.Ignored, source: src, request: ev.Request, step: ev.Step, attempt: ev.Attempt, partition: part}
	if ev.Kind != machine.EventResult || eff.Reason != machine.ReasonUnknownRequest {
		return d
	}
	if home, ok := p.holder(ev.Request, part); ok {
		d.reason = ReasonWrongPartition
		d.detail = fmt.Sprintf("result on partition %d for a request whose home partition is %d: a worker must produce to the task's %s", part, home, schemas.HeaderReplyPartition)
		return d
	}
	d.detail = fmt.Sprintf("no request %q on partition %d: it finished and expired, was never started, or the result was sent to another partition than the task's %s", ev.Request, part, schemas.HeaderReplyPartition)
	return d
}

// holder returns another owned partition holding request.
func (p *Processor) holder(request string, except int32) (int32, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for num, part := range p.mu.parts {
		if num != except && part.records[request] != nil {
			return num, true
		}
	}
	return 0, false
}

// recordSource names a consumed record in logs: topic/partition/offset.
func recordSource(r *kgo.Record) string {
	return r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)
}
