package processors

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topics"
)

func TestEndToEnd(t *testing.T) {
	e := newEnv(t, threeSteps, 4)
	comps := e.watchCompletions()
	w := e.startWorker(echo)
	r := e.startProcessor("p1")
	reqs := ids("e2e", 50)
	e.start("chain", reqs...)
	comps.wait(t, reqs, 20*time.Second)
	comps.exactlyOnce(t, reqs, schemas.Succeeded)

	for _, id := range reqs {
		c, _ := comps.get(id)
		var out map[string]any
		if err := json.Unmarshal(c.Output, &out); err != nil {
			t.Fatalf("%s: output %s: %v", id, c.Output, err)
		}
		// Each step added its name; the input travelled through.
		if out["id"] != id || out["a"] != 1.0 || out["b"] != 1.0 || out["c"] != 1.0 {
			t.Fatalf("%s: output %s", id, c.Output)
		}
	}
	for k, n := range w.deliveries() {
		if n != 1 {
			t.Errorf("task %s delivered %d times", k, n)
		}
	}
	if got := len(w.deliveries()); got != 3*len(reqs) {
		t.Errorf("%d tasks, want %d", got, 3*len(reqs))
	}
	st := r.p.Stats()
	t.Logf("stats: %+v", st)
	if st.Committed == 0 || len(st.Partitions) != 4 {
		t.Errorf("stats %+v", st)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}

// One transaction may span several polls (--commit-interval).
func TestCommitInterval(t *testing.T) {
	e := newEnv(t, threeSteps, 2)
	comps := e.watchCompletions()
	e.startWorker(echo)
	r := e.startProcessor("p1", func(c *Config) { c.CommitInterval = 50 * time.Millisecond })
	reqs := ids("interval", 300)
	e.start("chain", reqs...)
	comps.wait(t, reqs, 20*time.Second)
	comps.exactlyOnce(t, reqs, schemas.Succeeded)
	if st := r.p.Stats(); st.Committed == 0 || st.Events < uint64(4*len(reqs)) {
		t.Errorf("stats %+v", st)
	}
}

// A processor started before its topics exist (a Deployment applied with
// the `topics create` Job) waits for them and then runs; before, it exited
// at once with the drift error.
func TestProcessorWaitsForMissingTopics(t *testing.T) {
	e := newEnv(t, threeSteps, 2)
	ctx := context.Background()
	p := e.conn.Prefix
	if _, err := e.admin().DeleteTopics(ctx, p.State(), p.Tasks("b")); err != nil {
		t.Fatal(err)
	}
	r := e.startProcessor("p1")
	select {
	case err := <-r.done:
		t.Fatalf("processor exited while its topics were missing: %v", err)
	case <-time.After(3 * time.Second):
	}
	if err := topics.Ensure(ctx, e.admin(), e.set.Topics(p), 2, 1); err != nil {
		t.Fatal(err)
	}
	comp := e.watchCompletions()
	e.startWorker(echo)
	reqs := ids("wait", 5)
	e.start("chain", reqs...)
	comp.wait(t, reqs, time.Minute)
	comp.exactlyOnce(t, reqs, schemas.Succeeded)
}

// A wrong cleanup policy is not something a running `topics create` fixes:
// the processor refuses to start and says how to fix it.
func TestProcessorRefusesWrongPolicy(t *testing.T) {
	e := newEnv(t, threeSteps, 2)
	if _, err := e.admin().AlterTopicConfigs(context.Background(), []kadm.AlterConfig{{Name: "cleanup.policy", Value: kadm.StringPtr("delete")}}, e.conn.Prefix.State()); err != nil {
		t.Fatal(err)
	}
	r := e.startProcessor("p1")
	select {
	case err := <-r.done:
		r.done <- err
		if !errors.Is(err, topics.ErrDrift) || !strings.Contains(err.Error(), "stepwise topics create") {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("processor started on a state topic that is not compacted")
	}
}
