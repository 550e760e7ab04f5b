package topology

import (
	"strings"
	"testing"
)

// TestExpressionLoadErrors: every kind of problem in an expression is a
// load error at its line and column, with the field path.
func TestExpressionLoadErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"syntax", "workflows:\n  - name: w\n    steps:\n      - name: a\n        when: \"1 +\"\n",
			`e.yaml:5:18: workflows[0].steps[0].when: in expression "1 +": unexpected token EOF`},
		{"not a boolean", "workflows:\n  - name: w\n    steps:\n      - name: a\n        when: 1 + 2\n",
			`e.yaml:5:15: workflows[0].steps[0].when: in expression "1 + 2": expected bool, but got int`},
		{"unknown name", "workflows:\n  - name: w\n    steps:\n      - name: a\n        input:\n          x: request.id\n",
			`e.yaml:6:14: workflows[0].steps[0].input.x: in expression "request.id": unknown name request`},
		{"not a dependency", "workflows:\n  - name: w\n    steps:\n      - name: a\n      - name: b\n        when: steps.a.ok\n",
			`e.yaml:6:15: workflows[0].steps[1].when: in expression "steps.a.ok": steps.a is not one of the dependencies this expression can see (none)`},
		{"not a top-level step", "workflows:\n  - name: w\n    output: {x: 'steps[\"zz\"]'}\n    steps:\n      - name: a\n",
			`workflows[0].output.x: in expression "steps[\"zz\"]": steps.zz is not one of the top-level steps this expression can see (a)`},
		{"clock", "workflows:\n  - name: w\n    steps:\n      - name: a\n        when: now().Year() > 2000\n",
			`workflows[0].steps[0].when: in expression "now().Year() > 2000": unknown name now`},
		{"map order", "workflows:\n  - name: w\n    steps:\n      - name: a\n        input: {k: keys(input)}\n",
			`unknown name keys`},
		{"empty", "workflows:\n  - name: w\n    steps:\n      - name: a\n        when: \"\"\n",
			`e.yaml:5:15: workflows[0].steps[0].when: empty expression`},
		{"empty value", "workflows:\n  - name: w\n    steps:\n      - name: a\n        input: {x: }\n",
			`e.yaml:5:17: workflows[0].steps[0].input.x: empty expression`},
		{"not a mapping", "workflows:\n  - name: w\n    steps:\n      - name: a\n        input: [a]\n",
			`e.yaml:5:16: workflows[0].steps[0].input: must be a mapping of keys to expressions, got a list`},
		{"repeated key", "workflows:\n  - name: w\n    output:\n      x: input.a\n      x: input.b\n    steps:\n      - name: a\n",
			`e.yaml:5:7: workflows[0].output.x: repeated key "x"`},
		{"too large", "workflows:\n  - name: w\n    steps:\n      - name: a\n        when: " + strings.Repeat("input.a and ", 1500) + "true\n",
			`exceeds maximum allowed nodes`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("e.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %s", err, tc.want)
			}
		})
	}
}

// TestExpressionsCompileOnto: the programs are on the compiled steps and
// graph, with their source and field path, and a task's steps may refer to
// their own dependencies.
func TestExpressionsCompileOnto(t *testing.T) {
	set, err := Parse("ok.yaml", []byte(`
workflows:
  - name: w
    output: {n: steps.a.n}
    tasks:
      - name: t
        itemListKey: items
        steps:
          - name: x
          - name: y
            depends: [x]
            when: steps.x.ok
    steps:
      - name: a
        when: input.go
        input: {n: input.n, m: "input.m ?? 0"}
      - name: f
        task: t
        depends: [a]
`))
	if err != nil {
		t.Fatal(err)
	}
	w := set.Lookup("w")
	a := w.Graph.ByName["a"]
	if a.When == nil || a.When.Program == nil || a.When.Source != "input.go" || a.When.Path != "workflows[0].steps[0].when" {
		t.Fatalf("a.When = %+v", a.When)
	}
	if len(a.Input) != 2 || a.Input[0].Key != "n" || a.Input[1].Key != "m" || a.Input[1].Expr.Path != "workflows[0].steps[0].input.m" {
		t.Fatalf("a.Input = %+v", a.Input)
	}
	if len(w.Graph.Output) != 1 || w.Graph.Output[0].Expr.Path != "workflows[0].output.n" {
		t.Fatalf("output = %+v", w.Graph.Output)
	}
	if y := w.Tasks["t"].Graph.ByName["y"]; y.When == nil || w.Tasks["t"].Graph.Output != nil {
		t.Fatalf("task graph: when %+v, output %+v", y.When, w.Tasks["t"].Graph.Output)
	}
	if w.Graph.ByName["f"].When != nil || w.Graph.ByName["f"].Input != nil {
		t.Fatal("f has expressions it was not given")
	}
	// The canonical source reads back to the same expressions.
	again, err := Parse("canon.yaml", w.Source)
	if err != nil || again.Lookup("w").Graph.ByName["a"].When.Source != "input.go" {
		t.Fatalf("canonical source: %v", err)
	}
}
