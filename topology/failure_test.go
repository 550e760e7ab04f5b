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
