package processors

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/processors/machine"
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
	comps.exactlyOnce(t, reqs, machine.Succeeded)

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
	comps.exactlyOnce(t, reqs, machine.Succeeded)
	if st := r.p.Stats(); st.Committed == 0 || st.Events < uint64(4*len(reqs)) {
		t.Errorf("stats %+v", st)
	}
}

// A processor refuses to start on a cluster without its topics and says
// how to fix it.
func TestProcessorRefusesMissingTopics(t *testing.T) {
	e := newEnv(t, threeSteps, 2)
	if _, err := e.admin().DeleteTopics(context.Background(), e.conn.Prefix.State()); err != nil {
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
		t.Fatal("processor started without its state topic")
	}
}
