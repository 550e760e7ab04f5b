package processors

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/schemas"
)

const conditional = `
workflows:
  - name: cond
    output:
      id: input.id
      checked: steps.check.check
      big: '"big" in steps'
      after: steps.after?.after ?? 0
    steps:
      - name: check
        input: {id: input.id, n: input.n}
      - name: big
        depends: [check]
        when: steps.check.n > 5
        input: {double: steps.check.n * 2}
      - name: after
        depends: [big]
`

// startWith produces starts of workflow with the given inputs, by id.
func (e *env) startWith(workflow string, inputs map[string]map[string]any) {
	e.t.Helper()
	var rs []*kgo.Record
	for id, in := range inputs {
		v, _ := json.Marshal(map[string]any{"type": "start", "workflow": workflow, "id": id, "input": in})
		rs = append(rs, &kgo.Record{Topic: e.conn.Prefix.Requests(), Key: []byte(id), Value: v})
	}
	if err := e.client().ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// TestConditionsEndToEnd: through the broker, a when: that is false skips
// its step and the step after it, an input: mapping is what the worker
// receives, the workflow's output: is the completion's output, and an
// expression that cannot be evaluated fails the request with the reason.
func TestConditionsEndToEnd(t *testing.T) {
	e := newEnv(t, conditional, 2)
	comps := e.watchCompletions()
	bigInputs := make(chan map[string]any, 100)
	e.startWorker(func(tk task) ([]*kgo.Record, bool) {
		if tk.step == "big" {
			bigInputs <- tk.input
		}
		return echo(tk)
	})
	e.startProcessor("p1")
	inputs := map[string]map[string]any{}
	var small, large, bad []string
	for i := range 10 {
		id := fmt.Sprintf("cond-%02d", i)
		switch i % 3 {
		case 0:
			inputs[id] = map[string]any{"id": id, "n": 1}
			small = append(small, id)
		case 1:
			inputs[id] = map[string]any{"id": id, "n": 10 + i}
			large = append(large, id)
		default:
			inputs[id] = map[string]any{"id": id, "n": "many"}
			bad = append(bad, id)
		}
	}
	e.startWith("cond", inputs)
	all := append(append(append([]string{}, small...), large...), bad...)
	comps.wait(t, all, 30*time.Second)
	for _, id := range all {
		want := schemas.Succeeded
		if slices.Contains(bad, id) {
			want = schemas.Failed
		}
		if c, n := comps.get(id); n != 1 || c.Status != want {
			t.Fatalf("%s: %d completions, last %+v; want one, %s", id, n, c, want)
		}
	}

	for _, id := range small {
		c, _ := comps.get(id)
		want := fmt.Sprintf(`{"after":0,"big":false,"checked":1,"id":%q}`, id)
		if string(c.Output) != want {
			t.Errorf("%s: output %s, want %s", id, c.Output, want)
		}
	}
	for _, id := range large {
		c, _ := comps.get(id)
		want := fmt.Sprintf(`{"after":1,"big":true,"checked":1,"id":%q}`, id)
		if string(c.Output) != want {
			t.Errorf("%s: output %s, want %s", id, c.Output, want)
		}
	}
	for _, id := range bad {
		c, _ := comps.get(id)
		if c.Error == nil || c.Error.Step != "big" || !strings.Contains(c.Error.Message, `workflows[0].steps[1].when "steps.check.n > 5"`) {
			t.Errorf("%s: failure %+v", id, c.Error)
		}
	}
	close(bigInputs)
	n := 0
	for in := range bigInputs {
		n++
		d, ok := in["double"].(float64)
		if len(in) != 1 || !ok || d < 20 {
			t.Errorf("big received %v, want only {double: 2n} of a large n", in)
		}
	}
	if n != len(large) {
		t.Errorf("big ran %d times, want %d (once per large request, never for the others)", n, len(large))
	}
}
