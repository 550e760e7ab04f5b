package processors

import (
	"github.com/stepwise-run/stepwise/processors/machine"
	"github.com/stepwise-run/stepwise/schemas"
)

// partition is the committed state of one owned partition number: the
// records of the state topic's partition as of the last committed
// transaction, and the timers they imply.
//
// Invariant: records and timers change only in commit, after the broker
// confirmed the transaction that wrote the change. A partition value is
// built by restore, published in Processor.mu.parts, and from then on
// touched only by the poll loop; a revoke drops it from the map but never
// changes it, so the loop may read it while a callback runs.
type partition struct {
	num     int32
	records map[string]*schemas.Record
	timers  *timerIndex
	running int // records of requests (not children) still running
}

func newPartition(num int32) *partition {
	return &partition{num: num, records: map[string]*schemas.Record{}, timers: newTimerIndex()}
}

// load adds one restored state record (nil value: tombstone).
func (p *partition) load(key string, r *schemas.Record) {
	if r == nil {
		if old := p.records[key]; old != nil {
			for _, t := range machine.TimersOf(old) {
				p.timers.clear(t)
			}
		}
		p.put(key, nil)
		return
	}
	if old := p.records[key]; old != nil {
		for _, t := range machine.TimersOf(old) {
			p.timers.clear(t)
		}
	}
	p.put(key, r)
	for _, t := range machine.TimersOf(r) {
		p.timers.set(t)
	}
}

// put sets (nil: deletes) the committed record of key, keeping running
// up to date.
func (p *partition) put(key string, r *schemas.Record) {
	if old := p.records[key]; old != nil && isRunningRequest(old) {
		p.running--
	}
	if r == nil {
		delete(p.records, key)
		return
	}
	if isRunningRequest(r) {
		p.running++
	}
	p.records[key] = retained(r)
}

func isRunningRequest(r *schemas.Record) bool {
	return r.Path == "" && r.Kind == "" && r.Status == schemas.Running
}

// timerOp is one staged change of the timer index, applied in order.
type timerOp struct {
	kind  timerOpKind
	timer machine.Timer
}

type timerOpKind uint8

const (
	opSet timerOpKind = iota + 1
	opClear
	opFired
)

// staged is what the open transaction wrote to one partition: an overlay of
// records over the committed ones, and timer changes. It is the machine's
// Store for the batch.
type staged struct {
	base    *partition
	overlay map[string]*schemas.Record // nil value: deleted in this batch
	timers  []timerOp
}

func newStaged(base *partition) *staged {
	return &staged{base: base, overlay: map[string]*schemas.Record{}}
}

// Get implements machine.Store.
func (s *staged) Get(key string) *schemas.Record {
	if r, ok := s.overlay[key]; ok {
		return r
	}
	return s.base.records[key]
}

// stage records the effects of one event.
func (s *staged) stage(eff *machine.Effects) {
	for _, w := range eff.Writes {
		s.overlay[w.Key] = w.Record
	}
	for _, t := range eff.ClearTimers {
		s.timers = append(s.timers, timerOp{opClear, t})
	}
	for _, t := range eff.SetTimers {
		s.timers = append(s.timers, timerOp{opSet, t})
	}
}

// commit merges the overlay into the committed state. Call only after the
// transaction that produced it committed.
func (s *staged) commit() {
	p := s.base
	for k, r := range s.overlay {
		p.put(k, r)
	}
	for _, op := range s.timers {
		switch op.kind {
		case opSet:
			p.timers.set(op.timer)
		case opClear:
			p.timers.clear(op.timer)
		case opFired:
			p.timers.fired(op.timer)
		}
	}
}

// retained is what memory keeps of a committed record. A finished request
// stays in the state topic whole (for status queries) until it expires,
// but the machine only needs to know that it finished and when it expires
// (to ignore a repeated start, late results and cancels, and to forget it):
// keeping that much holds memory per remembered request to a few hundred
// bytes, whatever its input and outputs were. A failed or cancelled
// request is kept whole: a retry resumes it from its steps.
func retained(r *schemas.Record) *schemas.Record {
	if r.Path != "" || r.Status != schemas.StatusSucceeded {
		return r
	}
	return &schemas.Record{
		V: r.V, Request: r.Request, Workflow: r.Workflow, ID: r.ID,
		Partition: r.Partition, Status: r.Status, Error: r.Error,
		Created: r.Created, Updated: r.Updated, ExpireAt: r.ExpireAt,
	}
}
