package topology

import (
	"strings"
	"testing"
)

// TestContinueOnFailureKey: a boolean on plain steps; compiled onto the
// step.
func TestContinueOnFailureKey(t *testing.T) {
	set, err := Parse("c.yaml", []byte("workflows:\n  - name: w\n    steps:\n      - {name: a, continueOnFailure: true}\n      - {name: b}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if g := set.Lookup("w").Graph; !g.ByName["a"].ContinueOnFailure || g.ByName["b"].ContinueOnFailure {
		t.Fatal("continueOnFailure not compiled onto a alone")
	}
	for yaml, want := range map[string]string{
		"workflows:\n  - name: w\n    steps:\n      - {name: a, continueOnFailure: maybe}\n":                                                                      `c.yaml:4:38: workflows[0].steps[0].continueOnFailure: must be true or false, got "maybe"`,
		"workflows:\n  - name: w\n    tasks: [{name: t, itemListKey: xs, steps: [{name: x}]}]\n    steps:\n      - {name: a, task: t, continueOnFailure: true}\n": `c.yaml:5:47: workflows[0].steps[0].continueOnFailure: a fan-out step (task: t) is not dispatched: set continueOnFailure on its task's steps`,
	} {
		if _, err := Parse("c.yaml", []byte(yaml)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\nwant %s", err, want)
		}
	}
}

// TestTolerateKey: a count or a percentage, on fan-out steps only.
func TestTolerateKey(t *testing.T) {
	const head = "workflows:\n  - name: w\n    tasks: [{name: t, itemListKey: xs, steps: [{name: x}]}]\n    steps:\n"
	set, err := Parse("t.yaml", []byte(head+"      - {name: a, task: t, tolerate: {failures: 5%}}\n      - {name: b, task: t, tolerate: {failures: 3}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	g := set.Lookup("w").Graph
	if a, b := g.ByName["a"].Tolerate, g.ByName["b"].Tolerate; a == nil || a.Percent != 5 || b == nil || b.Count != 3 || a.Bound(100) != 5 || a.Bound(19) != 0 || b.Bound(1) != 3 {
		t.Fatalf("tolerate compiled to %+v, %+v", a, b)
	}
	for yaml, want := range map[string]string{
		head + "      - {name: a, tolerate: {failures: 1}}\n":             `t.yaml:5:29: workflows[0].steps[0].tolerate: only a fan-out step (task:) tolerates failures`,
		head + "      - {name: a, task: t, tolerate: {failures: 0%}}\n":   `t.yaml:5:49: workflows[0].steps[0].tolerate.failures: must be a whole number >= 0 or a percentage above 0% and at most 100%, got "0%"`,
		head + "      - {name: a, task: t, tolerate: {failures: -1}}\n":   `got "-1"`,
		head + "      - {name: a, task: t, tolerate: {failures: 101%}}\n": `got "101%"`,
		head + "      - {name: a, task: t, tolerate: {}}\n":               `workflows[0].steps[0].tolerate.failures: missing failures`,
		head + "      - {name: a, task: t, tolerate: {failure: 1}}\n":     `unknown field "failure"; did you mean "failures"?`,
	} {
		if _, err := Parse("t.yaml", []byte(yaml)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\nwant %s", err, want)
		}
	}
}

// TestOnFailureKey: a queue name; the handler's queue is in the topic plan.
func TestOnFailureKey(t *testing.T) {
	set, err := Parse("f.yaml", []byte("workflows:\n  - name: w\n    onFailure: release\n    defaults: {retry: {maxAttempts: 5}}\n    steps: [{name: a}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := set.Lookup("w").Graph.OnFailure
	if h == nil || h.Name != OnFailureStep || h.Queue != "release" || h.Retry.MaxAttempts != 5 || set.Lookup("w").Graph.ByName[OnFailureStep] != nil {
		t.Fatalf("handler = %+v", h)
	}
	if q := set.Queues(); strings.Join(q, ",") != "a,release" {
		t.Fatalf("queues = %v", q)
	}
	_, err = Parse("f.yaml", []byte("workflows:\n  - name: w\n    onFailure: bad/queue\n    steps: [{name: a}]\n"))
	if err == nil || !strings.Contains(err.Error(), `f.yaml:3:16: workflows[0].onFailure: invalid queue name "bad/queue"`) {
		t.Fatalf("error %v", err)
	}
}
