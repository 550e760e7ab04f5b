package topology

import (
	"testing"
	"time"
)

func TestTimerRules(t *testing.T) {
	tests := []struct {
		rule      string
		src       string
		line, col int
		path      string
		msg       string
	}{
		{
			rule: "sleep not positive",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: nap\n        sleep: 0s\n",
			line: 5, col: 16, path: "workflows[0].steps[0].sleep", msg: "must be positive, got 0s",
		},
		{
			rule: "sleep with a queue",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: nap\n        sleep: 1m\n        queue: q\n",
			line: 6, col: 16, path: "workflows[0].steps[0].queue",
			msg: "a sleep step is not dispatched: it succeeds once its time has passed; it has no queue",
		},
		{
			rule: "sleep with a retry",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: nap\n        sleep: 1m\n        retry: {maxAttempts: 2}\n",
			line: 6, col: 16, path: "workflows[0].steps[0].retry",
			msg: "a sleep step is not dispatched: it succeeds once its time has passed; it has no retry",
		},
		{
			rule: "sleep with a timeout",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: nap\n        sleep: 1m\n        timeout: 5s\n",
			line: 6, col: 18, path: "workflows[0].steps[0].timeout",
			msg: "a sleep step is not dispatched: it succeeds once its time has passed; it has no timeout",
		},
		{
			rule: "sleep and wait",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: nap\n        sleep: 1m\n        wait: {signal: go}\n",
			line: 6, col: 15, path: "workflows[0].steps[0].wait",
			msg: "a step either sleeps or waits for a signal, not both",
		},
		{
			rule: "sleep not a duration",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: nap\n        sleep: 10\n",
			line: 5, col: 16, path: "workflows[0].steps[0].sleep", msg: `invalid duration "10" (a unit is required, e.g. 30s, 500ms, 2m)`,
		},
		{
			rule: "deadline not positive",
			src:  "workflows:\n  - name: w\n    deadline: 0s\n" + okSteps,
			line: 3, col: 15, path: "workflows[0].deadline", msg: "must be positive, got 0s (leave it out for no deadline)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			errs := parseErrors(t, tt.src)
			if len(errs) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(errs), errs)
			}
			e := errs[0]
			if e.Line != tt.line || e.Column != tt.col || e.Path != tt.path || e.Msg != tt.msg {
				t.Errorf("got  %d:%d %q %q\nwant %d:%d %q %q", e.Line, e.Column, e.Path, e.Msg, tt.line, tt.col, tt.path, tt.msg)
			}
		})
	}
}

func TestTimersCompile(t *testing.T) {
	set, err := Parse("w.yaml", []byte("workflows:\n  - name: w\n    deadline: 1h\n    defaults: {timeout: 30s}\n    steps:\n      - name: a\n      - name: nap\n        depends: [a]\n        sleep: 10m\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := set.Lookup("w")
	nap := w.Graph.ByName["nap"]
	if w.Deadline != time.Hour || nap.Sleep != 10*time.Minute || nap.Queue != "" || nap.Timeout != 0 {
		t.Fatalf("deadline %s, nap %+v", w.Deadline, nap)
	}
	if q := set.Queues(); len(q) != 1 || q[0] != "a" {
		t.Errorf("queues %v: a sleep step has none", q)
	}
}
