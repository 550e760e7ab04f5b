package machine

import (
	"fmt"
	"time"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
)

// Defaults of the machine's options.
const (
	// DefaultMaxPayload bounds start inputs, results and step inputs. It
	// leaves room under Kafka's default 1 MiB message limit for the record
	// envelope around the payload.
	DefaultMaxPayload = 1<<20 - 64<<10
	// DefaultSpawnSlice is how many children of a fan-out one transition
	// creates (spawn.go).
	DefaultSpawnSlice = 500
	// DefaultRetention is how long a finished request's record is kept, so
	// that a repeated start with the same id is recognised and ignored, and
	// status queries still find it.
	DefaultRetention = 10 * time.Minute
)

// Definitions is the machine's read access to workflow definitions by
// version (definitions.Catalog). Resolve returns the workflow name at
// version, and the version it resolved to; version 0 asks for the one new
// requests start on. The error says why there is none, in words a failed
// request can carry.
type Definitions interface {
	Resolve(workflow string, version int) (*topology.Workflow, int, error)
}

// Machine advances requests of the workflows its definitions hold. It holds
// no request state; it is safe for concurrent use. A request is pinned to
// the version it started under (Record.Version) and every later event of
// it is applied to that version's graph, whatever was applied since.
type Machine struct {
	defs       Definitions
	maxPayload int
	retention  time.Duration
	spawnSlice int
}

// Option configures a Machine.
type Option func(*Machine)

// WithMaxPayload sets the largest accepted input, result or step input, in
// bytes.
func WithMaxPayload(n int) Option { return func(m *Machine) { m.maxPayload = n } }

// WithRetention sets how long finished requests are remembered.
func WithRetention(d time.Duration) Option { return func(m *Machine) { m.retention = d } }

// New returns a machine for the workflows of defs.
func New(defs Definitions, opts ...Option) *Machine {
	m := &Machine{defs: defs, maxPayload: DefaultMaxPayload, retention: DefaultRetention, spawnSlice: DefaultSpawnSlice}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Apply is the transition function: given the state visible through st, the
// event and the current time, it returns what to write and send. It never
// panics on bad input; an event that cannot change anything returns Effects
// with only Ignored set.
func (m *Machine) Apply(st Store, ev Event, now time.Time) Effects {
	t := &transition{m: m, st: st, now: now.UTC(), staged: map[string]*schemas.Record{}}
	switch ev.Kind {
	case EventStart:
		t.start(ev)
	case EventResult:
		t.result(ev)
	case EventCancel:
		t.cancel(ev)
	case EventTimer:
		t.timer(ev)
	case EventRetry:
		t.retry(ev)
	case EventSignal:
		t.signal(ev)
	case EventHeartbeat:
		t.heartbeat(ev)
	default:
		t.ignore(ReasonUnknownEventKind, fmt.Sprintf("unknown event kind %d", ev.Kind))
	}
	return t.effects()
}

// transition is the scratch space of one Apply call. Records read from the
// store are never modified: edit copies one with mutable, and the copies are
// what the effects write.
type transition struct {
	m      *Machine
	st     Store
	now    time.Time
	staged map[string]*schemas.Record // records written by this transition (nil: tombstone)
	order  []string                   // keys of staged, in first-write order
	eff    Effects
	exprs  exprScratch // expr.go
}

func (t *transition) ignore(reason Reason, why string) {
	t.eff.Reason, t.eff.Ignored = reason, why
}

// get returns the current value of key, seeing this transition's writes.
func (t *transition) get(key string) *schemas.Record {
	if r, ok := t.staged[key]; ok {
		return r
	}
	return t.st.Get(key)
}

// mutable returns a copy of the record at key that this transition owns and
// will write; nil when there is no such record.
func (t *transition) mutable(key string) *schemas.Record {
	if r, ok := t.staged[key]; ok {
		return r
	}
	r := t.st.Get(key)
	if r == nil {
		return nil
	}
	c := r.Clone()
	t.put(key, c)
	return c
}

func (t *transition) put(key string, r *schemas.Record) {
	if _, ok := t.staged[key]; !ok {
		t.order = append(t.order, key)
	}
	if r != nil {
		r.Updated = t.now
	}
	t.staged[key] = r
}

func (t *transition) effects() Effects {
	for _, k := range t.order {
		t.eff.Writes = append(t.eff.Writes, Write{Key: k, Record: t.staged[k]})
	}
	return t.eff
}
