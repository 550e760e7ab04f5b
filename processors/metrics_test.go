package processors

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/metrics"
	"github.com/stepwise-run/stepwise/schemas"
)

// TestMetrics runs requests whose step b fails once (retryably) and checks
// that the counters match what happened, exactly: every counter is
// incremented only by committed transactions.
func TestMetrics(t *testing.T) {
	e := newEnv(t, threeStepsRetried, 3)
	comps := e.watchCompletions()
	e.startWorker(func(tk task) ([]*kgo.Record, bool) {
		if tk.step == "b" && tk.attempt == 1 {
			return []*kgo.Record{errResult(tk, "try again", true)}, false
		}
		return echo(tk)
	})
	reg := metrics.NewRegistry()
	r := e.startProcessor("p1", func(c *Config) { c.Metrics = reg })

	reqs := ids("metrics", 40)
	e.start("chain", reqs...)
	comps.wait(t, reqs, 30*time.Second)
	comps.exactlyOnce(t, reqs, schemas.Succeeded)

	n := float64(len(reqs))
	chain := map[string]string{"workflow": "chain"}
	step := func(s string) map[string]string { return map[string]string{"workflow": "chain", "step": s} }
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"stepwise_requests_started_total", chain, n},
		{"stepwise_requests_finished_total", map[string]string{"workflow": "chain", "status": "succeeded"}, n},
		{"stepwise_request_duration_seconds", chain, n},
		{"stepwise_steps_started_total", step("a"), n},
		{"stepwise_steps_started_total", step("b"), 2 * n},
		{"stepwise_steps_retried_total", step("b"), n},
		{"stepwise_steps_retried_total", step("a"), 0},
		{"stepwise_steps_failed_total", step("b"), n},
		{"stepwise_steps_succeeded_total", step("b"), n},
		{"stepwise_steps_succeeded_total", step("c"), n},
		{"stepwise_step_duration_seconds", step("b"), 2 * n},
		{"stepwise_requests_in_flight", nil, 0},
		{"stepwise_restore_duration_seconds", nil, 1},
	} {
		got, err := metrics.Sum(reg, c.name, c.labels)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	commits, _ := metrics.Sum(reg, "stepwise_transaction_commit_seconds", nil)
	if st := r.p.Stats(); commits != float64(st.Committed) || commits == 0 {
		t.Errorf("%v commits observed, the processor counted %d", commits, st.Committed)
	}
	kafka, _ := metrics.Sum(reg, "stepwise_kafka_produce_records_total", map[string]string{"component": "processor"})
	if kafka == 0 {
		t.Error("no kprom metrics of the processor's Kafka client")
	}
	if err := r.p.Ready(); err != nil {
		t.Errorf("a processor that ran its requests is not ready: %v", err)
	}
	if err := r.stop(t); err != nil && !errors.Is(err, errRestart) {
		t.Fatal(err)
	}
}

func TestNotReadyBeforeJoining(t *testing.T) {
	e := newEnv(t, threeSteps, 1)
	p, err := New(Config{Conn: e.conn, Set: e.set, ReplicaID: "idle"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Ready(); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Ready before Run: %v", err)
	}
}

func TestStepLabel(t *testing.T) {
	for in, want := range map[string]string{"a": "a", "docs[3]/pages[10]/ocr": "docs/pages/ocr", "docs[0]": "docs"} {
		if got := metrics.StepLabel(in); got != want {
			t.Errorf("StepLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

// threeStepsRetried is threeSteps with retries at once.
const threeStepsRetried = `
workflows:
  - name: chain
    defaults:
      retry: { maxAttempts: 3, initial: 1ms, max: 1ms }
    steps:
      - name: a
      - name: b
        depends: [a]
      - name: c
        depends: [b]
`

// errResult is a protocol error result for tk.
func errResult(tk task, msg string, retryable bool) *kgo.Record {
	r := okResult(tk, map[string]any{})
	r.Value, _ = json.Marshal(schemas.StepError{Message: msg, Retryable: retryable})
	for i := range r.Headers {
		if r.Headers[i].Key == schemas.HeaderStatus {
			r.Headers[i].Value = []byte(schemas.StatusError)
		}
	}
	return r
}
