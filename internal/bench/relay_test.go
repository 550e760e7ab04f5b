package bench

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/kconn"
)

func TestScenarioHopCounts(t *testing.T) {
	// Records per request: the start, a task and a result per step, the
	// completion. idp's default bundle: 3 documents of 7 pages in all.
	cases := map[string]struct{ steps, records int }{
		"linear3":   {3, 8},
		"fanout100": {102, 206},
		"fanout10k": {10_002, 20_006},
		"idp":       {1 + 3 + 7 + 7 + 3 + 3 + 1, 52},
	}
	for name, want := range cases {
		sc, err := ScenarioByName(name, time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if sc.Steps() != want.steps || sc.Records() != want.records {
			t.Errorf("%s: %d steps, %d records; want %d, %d", name, sc.Steps(), sc.Records(), want.steps, want.records)
		}
		// The relay's plan uses exactly the workflow's queues, so both
		// systems run on the same topic plan with the same workers; the
		// queue of an onFailure handler (idp's notify) gets no task while
		// nothing fails, and the relay has no failure path.
		var qs []string
		for _, q := range sc.Set.Queues() {
			if wf := sc.Set.Lookup(sc.Workflow); wf.Graph.OnFailure == nil || wf.Graph.OnFailure.Queue != q {
				qs = append(qs, q)
			}
		}
		for _, q := range sc.Queues() {
			if _, ok := sc.RelayHandlers[q]; !ok {
				t.Errorf("%s: no relay handler for queue %s", name, q)
			}
		}
		if len(qs) != len(sc.Queues()) {
			t.Errorf("%s: workflow queues %v, relay queues %v", name, qs, sc.Queues())
		}
		for _, q := range sc.Set.Queues() {
			if _, ok := sc.Handlers[q]; !ok {
				t.Errorf("%s: no handler for queue %s", name, q)
			}
		}
	}
	if _, err := ScenarioByName("nope", 0); err == nil {
		t.Error("unknown scenario: want an error")
	}
}

// TestRelayHops replays one request of a small fan-out through Relay.next
// and counts what it produces at each hop.
func TestRelayHops(t *testing.T) {
	sc, err := fanout("fanout3", 3)
	if err != nil {
		t.Fatal(err)
	}
	conn := kconn.Config{Brokers: []string{"unused:9092"}, Prefix: "t."}
	r := NewRelay(conn, sc, nil)
	start := &kgo.Record{Topic: "t.requests", Partition: 2, Key: []byte("r-1"), Value: []byte(`{"type":"start","id":"r-1","input":{"x":1}}`)}
	records := 1 // the start
	tasks := r.next(start)
	if len(tasks) != 1 || tasks[0].Topic != "t.tasks.split" || string(tasks[0].Value) != `{"x":1}` {
		t.Fatalf("start: %d tasks %+v, want one split task with the input", len(tasks), tasks)
	}
	if h := header(tasks[0], "stepwise-reply-partition"); h != "2" {
		t.Errorf("reply partition %q, want the home partition 2", h)
	}
	var completion *kgo.Record
	for hop := 0; len(tasks) > 0; hop++ {
		if hop > 10 {
			t.Fatal("no completion after 10 hops")
		}
		records += len(tasks)
		var next []*kgo.Record
		for i, task := range tasks {
			records++ // the result
			res := &kgo.Record{Topic: "t.results", Partition: 2, Key: task.Key, Value: []byte(`{"i":` + strconv.Itoa(i) + `}`),
				Headers: []kgo.RecordHeader{{Key: "stepwise-step", Value: []byte(header(task, "stepwise-step"))}, {Key: "stepwise-status", Value: []byte("ok")}}}
			out := r.next(res)
			if i < len(tasks)-1 && len(out) > 0 {
				t.Fatalf("hop %d: result %d of %d released the next stage early", hop, i+1, len(tasks))
			}
			next = append(next, out...)
		}
		if len(next) == 1 && next[0].Topic == "t.completions" {
			completion = next[0]
			break
		}
		tasks = next
	}
	if completion == nil {
		t.Fatal("no completion")
	}
	records++
	if records != sc.Records() {
		t.Errorf("relay moved %d records, plan says %d", records, sc.Records())
	}
	var c struct {
		ID, Status string
	}
	if err := json.Unmarshal(completion.Value, &c); err != nil || c.ID != "r-1" || c.Status != "succeeded" || completion.Partition != 2 {
		t.Errorf("completion %s on partition %d (%v)", completion.Value, completion.Partition, err)
	}
	if len(r.pending) != 0 {
		t.Errorf("relay kept %d counters after the request finished", len(r.pending))
	}
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestParseRelayStep(t *testing.T) {
	for _, c := range []struct {
		in      string
		s, i    int
		wantErr bool
	}{{"0/0", 0, 0, false}, {"2/9999", 2, 9999, false}, {"a", 0, 0, true}, {"1/x", 0, 0, true}, {"-1/0", 0, 0, true}} {
		s, i, ok := parseRelayStep(c.in)
		if ok == c.wantErr || (ok && (s != c.s || i != c.i)) {
			t.Errorf("parseRelayStep(%q) = %d, %d, %v", c.in, s, i, ok)
		}
	}
	if s, i, ok := parseRelayStep(relayStep(3, 7)); !ok || s != 3 || i != 7 {
		t.Errorf("round trip of relayStep(3, 7) = %d, %d, %v", s, i, ok)
	}
}
