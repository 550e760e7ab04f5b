package topology

import (
	"strings"
	"testing"
	"time"
)

func TestWaitRules(t *testing.T) {
	step := func(body string) string {
		return "workflows:\n  - name: w\n    steps:\n      - name: a\n      - name: review\n        depends: [a]\n" + body
	}
	tests := []struct {
		rule      string
		src       string
		line, col int
		path      string
		msg       string
	}{
		{
			rule: "signal missing",
			src:  step("        wait: {timeout: 1h}\n"),
			line: 7, col: 15, path: "workflows[0].steps[1].wait.signal",
			msg: "missing signal name: the name a signal must carry to complete this step",
		},
		{
			rule: "signal name invalid",
			src:  step("        wait: {signal: \"ok now\"}\n"),
			line: 7, col: 24, path: "workflows[0].steps[1].wait.signal",
			msg: `invalid signal name "ok now": must be ` + nameRule,
		},
		{
			rule: "timeout not positive",
			src:  step("        wait: {signal: approve, timeout: 0s}\n"),
			line: 7, col: 42, path: "workflows[0].steps[1].wait.timeout",
			msg: "must be positive, got 0s (leave it out to wait without a bound)",
		},
		{
			rule: "onTimeout without timeout",
			src:  step("        wait:\n          signal: approve\n          onTimeout: {output: {ok: false}}\n"),
			line: 9, col: 22, path: "workflows[0].steps[1].wait.onTimeout",
			msg: "onTimeout needs wait.timeout: without one the step waits without a bound",
		},
		{
			rule: "onTimeout output not a mapping",
			src:  step("        wait: {signal: approve, timeout: 1h, onTimeout: {output: [1]}}\n"),
			line: 7, col: 66, path: "workflows[0].steps[1].wait.onTimeout.output",
			msg: "must be a mapping (the step's output, a JSON object), got a list",
		},
		{
			rule: "unknown wait key",
			src:  step("        wait: {signal: approve, timout: 1h}\n"),
			line: 7, col: 33, path: "workflows[0].steps[1].wait.timout",
			msg: `unknown field "timout"; did you mean "timeout"?`,
		},
		{
			rule: "unknown onTimeout key",
			src:  step("        wait: {signal: approve, timeout: 1h, onTimeout: {step: x}}\n"),
			line: 7, col: 58, path: "workflows[0].steps[1].wait.onTimeout.step",
			msg: `unknown field "step" (known: output)`,
		},
		{
			rule: "wait with a queue",
			src:  step("        queue: people\n        wait: {signal: approve}\n"),
			line: 7, col: 16, path: "workflows[0].steps[1].queue",
			msg: "a wait step has no queue: it is not dispatched, a signal completes it",
		},
		{
			rule: "wait with a step timeout",
			src:  step("        timeout: 5s\n        wait: {signal: approve}\n"),
			line: 7, col: 18, path: "workflows[0].steps[1].timeout",
			msg: "a wait step is bounded by wait.timeout, not timeout",
		},
		{
			rule: "wait and task",
			src: "workflows:\n  - name: w\n    steps:\n      - name: a\n        task: t\n        wait: {signal: approve}\n" +
				"    tasks:\n      - name: t\n        itemListKey: xs\n        steps: [{name: x}]\n",
			line: 5, col: 15, path: "workflows[0].steps[0].task",
			msg: "a step either waits for a signal (wait) or fans out (task), not both",
		},
		{
			rule: "wait not a mapping",
			src:  step("        wait: approve\n"),
			line: 7, col: 15, path: "workflows[0].steps[1].wait",
			msg: `must be a mapping of fields, got "approve"`,
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

func TestWaitCompiles(t *testing.T) {
	src := `workflows:
  - name: w
    defaults:
      retry: {maxAttempts: 5}
      timeout: 30s
    steps:
      - name: a
      - name: review
        depends: [a]
        wait:
          signal: review
          timeout: 72h
          onTimeout:
            output: {label: unknown, confidence: 0}
      - name: approve
        depends: [a]
        retry: {maxAttempts: 2}
        wait: {signal: approve, timeout: 1h}
      - name: forever
        wait: {signal: go}
    tasks:
      - name: t
        itemListKey: docs
        steps:
          - name: check
            wait: {signal: review}
`
	set, err := Parse("w.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	w := set.Lookup("w")
	review := w.Graph.ByName["review"]
	if review.Wait == nil || review.Wait.Signal != "review" || review.Wait.Timeout != 72*time.Hour ||
		string(review.Wait.OnTimeout) != `{"confidence":0,"label":"unknown"}` {
		t.Fatalf("review: %+v", review.Wait)
	}
	if review.Queue != "" || review.Transport != "" || review.Retry.MaxAttempts != 1 {
		t.Errorf("review: queue %q transport %q retry %+v; want no queue and one attempt (defaults are for dispatched steps)", review.Queue, review.Transport, review.Retry)
	}
	if a := w.Graph.ByName["approve"]; a.Wait.OnTimeout != nil || a.Retry.MaxAttempts != 2 {
		t.Errorf("approve: onTimeout %s, retry %+v", a.Wait.OnTimeout, a.Retry)
	}
	if f := w.Graph.ByName["forever"]; f.Wait.Timeout != 0 || f.Timeout != 0 {
		t.Errorf("forever: wait timeout %s, step timeout %s: want none (defaults.timeout is for dispatched steps)", f.Wait.Timeout, f.Timeout)
	}
	if got := set.Queues(); strings.Join(got, ",") != "a" {
		t.Errorf("queues %v: wait steps have none", got)
	}
	if got := w.WaitSteps("review"); len(got) != 2 || got[0] != review || got[1] != w.Tasks["t"].Graph.ByName["check"] {
		t.Errorf("WaitSteps(review) = %v", got)
	}
	if !w.WaitsFor("go") || w.WaitsFor("nothing") {
		t.Error("WaitsFor")
	}
	// The canonical source reads back to the same wait.
	again, err := Parse("c.yaml", w.Source)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.Lookup("w").Graph.ByName["review"].Wait; string(got.OnTimeout) != string(review.Wait.OnTimeout) || got.Timeout != review.Wait.Timeout {
		t.Errorf("canonical source: %+v", got)
	}
}

// The empty onTimeout, or one without output, is the empty object.
func TestWaitOnTimeoutEmpty(t *testing.T) {
	for _, body := range []string{"onTimeout: {}", "onTimeout: {output: }", "onTimeout:"} {
		src := "workflows:\n  - name: w\n    steps:\n      - name: r\n        wait: {signal: s, timeout: 1m}\n"
		src = strings.Replace(src, "timeout: 1m}", "timeout: 1m, "+body+"}", 1)
		if body == "onTimeout:" {
			src = "workflows:\n  - name: w\n    steps:\n      - name: r\n        wait:\n          signal: s\n          timeout: 1m\n          onTimeout:\n"
		}
		set, err := Parse("w.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if got := set.Lookup("w").Graph.ByName["r"].Wait.OnTimeout; string(got) != "{}" {
			t.Errorf("%s: onTimeout output %s, want {}", body, got)
		}
	}
}

// A compiled set with wait and sleep steps (no queue: never dispatched)
// keeps Validate's invariants, top level and inside a task, as a merge of
// sets checks them; a wait step given a queue breaks them.
func TestWaitAndSleepValidate(t *testing.T) {
	set, err := Parse("w.yaml", []byte(`workflows:
  - name: w
    steps:
      - name: a
      - name: nap
        depends: [a]
        sleep: 1s
      - name: docs
        task: doc
        depends: [nap]
    tasks:
      - name: doc
        itemListKey: docs
        steps:
          - name: b
          - name: review
            depends: [b]
            wait: {signal: review, timeout: 1h, onTimeout: {output: {ok: false}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	set.Lookup("w").Tasks["doc"].Graph.ByName["review"].Queue = "review"
	if err := set.Validate(); err == nil || !strings.Contains(err.Error(), "review: a wait or sleep step with a queue") {
		t.Errorf("a wait step with a queue: %v", err)
	}
}
