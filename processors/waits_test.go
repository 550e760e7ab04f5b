package processors

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/schemas"
)

// waitsYAML has a wait step with a timeout that routes to a default, one
// that waits for a signal, a sleep step, and a workflow with a deadline
// whose second step is never answered.
const waitsYAML = `workflows:
  - name: review
    steps:
      - name: a
      - name: review
        depends: [a]
        wait: {signal: review, timeout: 300ms, onTimeout: {output: {label: unknown}}}
      - name: b
        depends: [review]
  - name: approval
    steps:
      - name: a
      - name: approve
        depends: [a]
        wait: {signal: approve}
      - name: b
        depends: [approve]
  - name: nap
    steps:
      - name: a
      - name: nap
        depends: [a]
        sleep: 2s
      - name: b
        depends: [nap]
  - name: bounded
    deadline: 1s
    steps:
      - name: a
      - name: hang
        depends: [a]
`

// answerAllBut echoes every task except those of step skip.
func answerAllBut(skip string) workerFunc {
	return func(tk task) ([]*kgo.Record, bool) {
		if tk.step == skip {
			return nil, false
		}
		return echo(tk)
	}
}

func TestRuntimeSignalFromAPlainProducer(t *testing.T) {
	e := newEnv(t, waitsYAML, 2)
	comps := e.watchCompletions()
	e.startWorker(echo)
	e.startProcessor("p1")
	// The early signal, as a plain Kafka producer writes it (PROTOCOL.md),
	// right after the start: kept until approve waits.
	e.start("approval", "sg-1")
	e.produceRaw("sg-1", []byte(`{"type":"signal","id":"sg-1","name":"approve","data":{"by":"ann"}}`))
	e.produceRaw("sg-1", []byte(`{"type":"signal","id":"sg-1","name":"approve","data":{"by":"bob"}}`)) // first wins
	comps.wait(t, []string{"sg-1"}, 20*time.Second)
	comps.exactlyOnce(t, []string{"sg-1"}, schemas.Succeeded)
	c, _ := comps.get("sg-1")
	var out map[string]any
	_ = json.Unmarshal(c.Output, &out)
	if out["by"] != "ann" || out["b"] != 1.0 {
		t.Fatalf("output %s; want the first signal's data passed through b", c.Output)
	}
}

func TestRuntimeWaitTimeoutTakesTheDefault(t *testing.T) {
	e := newEnv(t, waitsYAML, 2)
	comps := e.watchCompletions()
	e.startWorker(echo)
	e.startProcessor("p1")
	e.start("review", "wt-1")
	comps.wait(t, []string{"wt-1"}, 20*time.Second)
	comps.exactlyOnce(t, []string{"wt-1"}, schemas.Succeeded)
	if c, _ := comps.get("wt-1"); !strings.Contains(string(c.Output), `"label":"unknown"`) {
		t.Fatalf("output %s; want onTimeout's output through b", c.Output)
	}
}

// A sleeping request's timer is in state: a processor that takes over
// the partition fires it.
func TestRuntimeSleepSurvivesTakeover(t *testing.T) {
	e := newEnv(t, waitsYAML, 2)
	comps := e.watchCompletions()
	e.startWorker(echo)
	p1 := e.startProcessor("p1")
	e.start("nap", "nap-1")
	started := time.Now()
	// Wait until a is answered and nap sleeps, then stop p1.
	time.Sleep(500 * time.Millisecond)
	if _, n := comps.get("nap-1"); n != 0 {
		t.Fatal("nap-1 finished before its sleep")
	}
	if err := p1.stop(t); err != nil {
		t.Fatal(err)
	}
	e.startProcessor("p2")
	comps.wait(t, []string{"nap-1"}, 30*time.Second)
	comps.exactlyOnce(t, []string{"nap-1"}, schemas.Succeeded)
	c, _ := comps.get("nap-1")
	if took := c.Finished.Sub(c.Started); took < 2*time.Second {
		t.Fatalf("finished %s after the start; the sleep is 2s", took)
	}
	var out map[string]any
	_ = json.Unmarshal(c.Output, &out)
	if out["a"] != 1.0 || out["b"] != 1.0 || out["id"] != "nap-1" {
		t.Fatalf("output %s; want the input through a, the sleep and b", c.Output)
	}
	t.Logf("nap-1 completed %s after it was produced", time.Since(started).Round(time.Millisecond))
}

func TestRuntimeDeadlineFailsTheRequest(t *testing.T) {
	e := newEnv(t, waitsYAML, 2)
	comps := e.watchCompletions()
	e.startWorker(answerAllBut("hang"))
	e.startProcessor("p1")
	e.start("bounded", "dl-1")
	comps.wait(t, []string{"dl-1"}, 20*time.Second)
	comps.exactlyOnce(t, []string{"dl-1"}, schemas.Failed)
	if c, _ := comps.get("dl-1"); c.Error == nil || c.Error.Message != "deadline of 1s passed" {
		t.Fatalf("completion %+v", c)
	}
}
