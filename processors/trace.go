package processors

import (
	"time"

	"github.com/stepwise-run/stepwise/processors/machine"
	"github.com/stepwise-run/stepwise/tracing"
)

// span is a span a batch ends, emitted once the batch commits: an
// attempt span (request empty) or a request span. Built only when the
// processor traces.
type span struct {
	trace, parent string // the request's Record.Trace and TraceParent
	attempt       tracing.Attempt
	request       *tracing.Request
}

// traceSpans appends the spans an applied event ends: the step attempt a
// result or timeout ends, the attempts a cancel or failure revokes, and
// the requests that completed. started is when the attempt a result or
// timeout answers began (attemptStarted, read before the event was
// applied); st is the batch's view before the event's writes.
func traceSpans(out []span, st *staged, ev machine.Event, eff *machine.Effects, started, now time.Time) []span {
	root := st.Get(ev.Request)
	for _, w := range eff.Writes {
		if w.Key == ev.Request && w.Record != nil {
			root = w.Record
		}
	}
	if root == nil || root.Trace == "" {
		return out
	}
	// worker is the id of the worker that answered (HeaderWorker), if any.
	attempt := func(step string, n int, outcome, errMsg string, from time.Time, worker string) {
		out = append(out, span{trace: root.Trace, attempt: tracing.Attempt{
			Request: ev.Request, Workflow: root.Workflow, Step: step, Attempt: n, Worker: worker,
			Outcome: outcome, Error: errMsg, Started: from, Ended: now,
		}})
	}
	switch {
	case ev.Kind == machine.EventResult:
		outcome, msg := tracing.OutcomeSucceeded, ""
		if ev.Error != nil {
			outcome, msg = tracing.OutcomeFailed, ev.Error.Message
		}
		attempt(ev.Step, ev.Attempt, outcome, msg, started, ev.Worker)
	case ev.Kind == machine.EventTimer && ev.Timer == machine.TimerTimeout:
		attempt(ev.Step, ev.Attempt, tracing.OutcomeTimedOut, "timed out", started, "")
	}
	for _, r := range eff.Revokes {
		from := attemptStarted(st, machine.Event{Request: r.Request, Step: r.Step, Attempt: r.Attempt})
		attempt(r.Step, r.Attempt, "cancelled", r.Reason, from, "")
	}
	for _, c := range eff.Completions {
		q := &tracing.Request{Request: c.Request, Workflow: c.Workflow, Version: c.Version,
			Status: string(c.Status), Started: c.Started, Ended: c.Finished}
		if c.Error != nil {
			q.Error = c.Error.Message
		}
		out = append(out, span{trace: root.Trace, parent: root.TraceParent, request: q})
	}
	return out
}

// emitSpans emits a committed batch's spans.
func (p *Processor) emitSpans(b *batch) {
	for i := range b.spans {
		s := &b.spans[i]
		if s.request != nil {
			p.tracer.Request(s.trace, s.parent, *s.request)
		} else {
			p.tracer.Attempt(s.trace, s.attempt)
		}
	}
}
