package processors

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/tracing"
)

// callerTrace is the traceparent of the span that starts the traced
// request: the caller's.
const callerTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// startTraced produces a start of workflow with a traceparent header.
func (e *env) startTraced(workflow, id, tp string) {
	e.t.Helper()
	v, _ := json.Marshal(map[string]any{"type": "start", "workflow": workflow, "id": id, "input": map[string]any{}})
	r := &kgo.Record{Topic: e.conn.Prefix.Requests(), Key: []byte(id), Value: v,
		Headers: []kgo.RecordHeader{{Key: schemas.HeaderTraceparent, Value: []byte(tp)}}}
	if err := e.client().ProduceSync(context.Background(), r).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// traceWorkerID is the id traceWorker's results carry.
const traceWorkerID = "trace-worker/1"

// traceWorker answers like TestMetrics' worker (b fails once) and keeps
// the traceparent header of every task, by "step attempt".
func traceWorker(e *env) (seen func() map[string]string) {
	var mu sync.Mutex
	got := map[string]string{}
	e.startWorker(func(tk task) ([]*kgo.Record, bool) {
		for _, h := range tk.record.Headers {
			if h.Key == schemas.HeaderTraceparent {
				mu.Lock()
				got[tk.step+" "+string(rune('0'+tk.attempt))] = string(h.Value)
				mu.Unlock()
			}
		}
		var recs []*kgo.Record
		var ok bool
		if tk.step == "b" && tk.attempt == 1 {
			recs, ok = []*kgo.Record{errResult(tk, "try again", true)}, false
		} else {
			recs, ok = echo(tk)
		}
		for _, r := range recs {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: schemas.HeaderWorker, Value: []byte(traceWorkerID)})
		}
		return recs, ok
	})
	return func() map[string]string {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]string{}
		for k, v := range got {
			out[k] = v
		}
		return out
	}
}

// TestTracing checks the processor's spans of one request started with a
// caller's traceparent: a request span, child of the caller's span, and
// one span per step attempt, child of the request span, whose ids are the
// parents the tasks carried to the worker.
func TestTracing(t *testing.T) {
	e := newEnv(t, threeStepsRetried, 2)
	comps := e.watchCompletions()
	seen := traceWorker(e)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithIDGenerator(tracing.IDGenerator{}))
	e.startProcessor("p1", func(c *Config) { c.Tracer = tp })

	e.startTraced("chain", "traced-1", callerTrace)
	comps.wait(t, []string{"traced-1"}, 30*time.Second)
	caller, _ := tracing.Parse(callerTrace)

	deadline := time.Now().Add(5 * time.Second)
	for len(exp.GetSpans()) < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the spans of the last commit
	}
	spans := exp.GetSpans()
	var req *tracetest.SpanStub
	attempts := map[string]tracetest.SpanStub{}
	for i, s := range spans {
		if s.SpanContext.TraceID() != caller.TraceID() {
			t.Errorf("span %q is in trace %s, not the caller's %s", s.Name, s.SpanContext.TraceID(), caller.TraceID())
		}
		if s.Name == "request chain" {
			req = &spans[i]
			continue
		}
		attempts[attr(s, tracing.KeyStep)+" "+attr(s, tracing.KeyAttempt)] = s
	}
	if req == nil {
		t.Fatalf("no request span among %d spans", len(spans))
	}
	if req.Parent.SpanID() != caller.SpanID() {
		t.Errorf("request span's parent = %s, want the caller's span %s", req.Parent.SpanID(), caller.SpanID())
	}
	if got := attr(*req, tracing.KeyOutcome); got != "succeeded" {
		t.Errorf("request span outcome = %q, want succeeded", got)
	}
	want := map[string]string{"a 1": "succeeded", "b 1": "failed", "b 2": "succeeded", "c 1": "succeeded"}
	if len(attempts) != len(want) {
		t.Errorf("attempt spans %v, want %v", keys(attempts), want)
	}
	tasks := seen()
	for k, outcome := range want {
		s, ok := attempts[k]
		if !ok {
			t.Errorf("no span of attempt %s", k)
			continue
		}
		if got := attr(s, tracing.KeyOutcome); got != outcome {
			t.Errorf("attempt %s: outcome %q, want %q", k, got, outcome)
		}
		if attr(s, tracing.KeyWorkflow) != "chain" || attr(s, tracing.KeyRequest) != "traced-1" || attr(s, tracing.KeyWorker) != traceWorkerID {
			t.Errorf("attempt %s: attributes %v", k, s.Attributes)
		}
		if s.Parent.SpanID() != req.SpanContext.SpanID() {
			t.Errorf("attempt %s: parent %s, want the request span %s", k, s.Parent.SpanID(), req.SpanContext.SpanID())
		}
		if got := tasks[k]; got != tracing.Format(s.SpanContext) {
			t.Errorf("attempt %s: the task carried traceparent %q, want the attempt span %q", k, got, tracing.Format(s.SpanContext))
		}
		if !s.EndTime.After(s.StartTime) {
			t.Errorf("attempt %s: span from %v to %v", k, s.StartTime, s.EndTime)
		}
	}
}

// TestTracingOffPassesTraceparent checks that a processor without a
// tracer emits nothing but still hands the caller's traceparent to the
// tasks, so traced workers continue the caller's trace.
func TestTracingOffPassesTraceparent(t *testing.T) {
	e := newEnv(t, threeStepsRetried, 1)
	comps := e.watchCompletions()
	seen := traceWorker(e)
	e.startProcessor("p1")
	e.startTraced("chain", "passed-1", callerTrace)
	e.startTraced("chain", "garbled-1", "00-not-a-trace-01")
	comps.wait(t, []string{"passed-1", "garbled-1"}, 30*time.Second)
	tasks := seen()
	if len(tasks) != 4 {
		t.Errorf("tasks with a traceparent: %v, want the 4 attempts of passed-1 only", tasks)
	}
	for k, tp := range tasks {
		if tp != callerTrace {
			t.Errorf("task %s carried %q, want the caller's %q", k, tp, callerTrace)
		}
	}
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			if kv.Value.Type() == attribute.INT64 {
				return kv.Value.Emit()
			}
			return kv.Value.AsString()
		}
	}
	return ""
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
