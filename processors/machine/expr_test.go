package machine

import (
	"strings"
	"testing"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
)

// parsed loads one workflow from YAML, the way definitions are loaded.
func parsed(t testing.TB, yamlText string) *topology.Workflow {
	t.Helper()
	set, err := topology.Parse("test.yaml", []byte(yamlText))
	if err != nil {
		t.Fatal(err)
	}
	return set.Workflows[set.Order[0]]
}

func stepStatus(h *harness, key, step string) schemas.StepStatus {
	r := h.store[key]
	if r == nil || r.Steps[step] == nil {
		return ""
	}
	return r.Steps[step].Status
}

// TestExpressionRules has one case per rule of expr.go's comment.
func TestExpressionRules(t *testing.T) {
	cases := []struct {
		name, yaml, input string
		run               func(t *testing.T, h *harness)
	}{
		{
			name: "when true runs the step with the merged input",
			yaml: `
workflows:
  - name: w
    steps:
      - name: a
      - name: b
        depends: [a]
        when: steps.a.n > 1 and input.go`,
			input: `{"go":true}`,
			run: func(t *testing.T, h *harness) {
				h.ok(h.dispatched("a"), `{"n":2}`)
				jsonEq(t, "input of b", h.dispatched("b").Input, `{"n":2}`)
				h.ok(h.dispatched("b"), `{"b":1}`)
				wantDone(t, h, schemas.Succeeded, `{"b":1}`)
			},
		},
		{
			name: "when false skips the step and a dependent of skipped steps only",
			yaml: `
workflows:
  - name: w
    steps:
      - name: a
      - name: b
        depends: [a]
        when: steps.a.n > 1
      - name: c
        depends: [b]
      - name: d
        depends: [a]`,
			input: `{}`,
			run: func(t *testing.T, h *harness) {
				h.ok(h.dispatched("a"), `{"n":1}`)
				if s := stepStatus(h, "r", "b"); s != schemas.StepSkipped {
					t.Fatalf("b is %q, want skipped", s)
				}
				if s := stepStatus(h, "r", "c"); s != schemas.StepSkipped {
					t.Fatalf("c (after skipped b only) is %q, want skipped", s)
				}
				if got := h.stepsDispatched(); strings.Join(got, " ") != "a#1 d#1" {
					t.Fatalf("dispatched %v, want a and d", got)
				}
				h.ok(h.dispatched("d"), `{"d":1}`)
				// c is a terminal step, but skipped: no part of the output.
				wantDone(t, h, schemas.Succeeded, `{"d":1}`)
			},
		},
		{
			name: "a dependent with a succeeded dependency runs without the skipped one",
			yaml: `
workflows:
  - name: w
    steps:
      - name: a
      - name: b
        when: input.flag
      - name: c
        depends: [b, a]
        input:
          fromA: steps.a.v
          sawB: '"b" in steps'`,
			input: `{"flag":false}`,
			run: func(t *testing.T, h *harness) {
				h.ok(h.dispatched("a"), `{"v":"x"}`)
				jsonEq(t, "input of c", h.dispatched("c").Input, `{"fromA":"x","sawB":false}`)
			},
		},
		{
			name: "a step after only skipped steps is skipped without evaluating its when",
			yaml: `
workflows:
  - name: w
    steps:
      - name: a
        when: "false"
      - name: b
        depends: [a]
        when: steps.a.missing.deeper == 1`,
			input: `{}`,
			run: func(t *testing.T, h *harness) {
				if len(h.dispatches) != 0 {
					t.Fatalf("dispatched %v", h.stepsDispatched())
				}
				if s := stepStatus(h, "r", "b"); s != schemas.StepSkipped {
					t.Fatalf("b is %q, want skipped", s)
				}
				wantDone(t, h, schemas.Succeeded, `{}`)
			},
		},
		{
			name: "input mapping replaces the merge",
			yaml: `
workflows:
  - name: w
    steps:
      - name: a
      - name: b
        depends: [a, __start__]
        input:
          doc: input.doc
          pages: len(steps.a.pages)
          first: steps.a.pages[0]
          lang: input.lang ?? "en"`,
			input: `{"doc":"d1","other":1}`,
			run: func(t *testing.T, h *harness) {
				h.ok(h.dispatched("a"), `{"pages":["p1","p2"],"x":1}`)
				jsonEq(t, "input of b", h.dispatched("b").Input, `{"doc":"d1","pages":2,"first":"p1","lang":"en"}`)
			},
		},
		{
			name: "workflow output mapping replaces the terminals' merge",
			yaml: `
workflows:
  - name: w
    output:
      total: steps.a.n + steps.b.n
      review: steps.c?.decision ?? "auto"
      user: input.user
    steps:
      - name: a
      - name: b
      - name: c
        when: steps.a.n > 10
        depends: [a]`,
			input: `{"user":"u"}`,
			run: func(t *testing.T, h *harness) {
				h.ok(h.dispatched("a"), `{"n":1}`)
				h.ok(h.dispatched("b"), `{"n":2}`)
				wantDone(t, h, schemas.Succeeded, `{"total":3,"review":"auto","user":"u"}`)
			},
		},
		{
			name: "an evaluation error of when fails the step and the request, naming the expression",
			yaml: `
workflows:
  - name: w
    steps:
      - name: a
      - name: b
        depends: [a]
        when: steps.a.n + 1 > 2`,
			input: `{}`,
			run: func(t *testing.T, h *harness) {
				h.ok(h.dispatched("a"), `{"n":"text"}`)
				c := wantDone(t, h, schemas.Failed, "")
				if c.Error.Step != "b" || !strings.Contains(c.Error.Message, `workflows[0].steps[1].when "steps.a.n + 1 > 2"`) {
					t.Fatalf("failure = %+v", c.Error)
				}
				if s := stepStatus(h, "r", "b"); s != schemas.StepFailed {
					t.Fatalf("b is %q, want failed", s)
				}
				if len(h.dispatches) != 1 {
					t.Fatalf("dispatched %v", h.stepsDispatched())
				}
			},
		},
		{
			name: "a when that is not a boolean at run time fails the step",
			yaml: `
workflows:
  - name: w
    steps:
      - name: a
        when: input.flag`,
			input: `{"flag":"yes"}`,
			run: func(t *testing.T, h *harness) {
				c := wantDone(t, h, schemas.Failed, "")
				if c.Error.Step != "a" || c.Error.Attempt != 1 || !strings.Contains(c.Error.Message, "input.flag") {
					t.Fatalf("failure = %+v", c.Error)
				}
			},
		},
		{
			name: "an evaluation error of an input mapping fails the step",
			yaml: `
workflows:
  - name: w
    steps:
      - name: a
        input:
          x: input.list[5]`,
			input: `{"list":[1]}`,
			run: func(t *testing.T, h *harness) {
				c := wantDone(t, h, schemas.Failed, "")
				if c.Error.Step != "a" || !strings.Contains(c.Error.Message, `workflows[0].steps[0].input.x "input.list[5]"`) {
					t.Fatalf("failure = %+v", c.Error)
				}
				if len(h.dispatches) != 0 {
					t.Fatalf("dispatched %v", h.stepsDispatched())
				}
			},
		},
		{
			name: "an evaluation error of the workflow output fails the request",
			yaml: `
workflows:
  - name: w
    output:
      x: steps.a.n * 2
    steps:
      - name: a`,
			input: `{}`,
			run: func(t *testing.T, h *harness) {
				h.ok(h.dispatched("a"), `{"n":"two"}`)
				c := wantDone(t, h, schemas.Failed, "")
				if !strings.Contains(c.Error.Message, `workflows[0].output.x "steps.a.n * 2"`) {
					t.Fatalf("failure = %+v", c.Error)
				}
			},
		},
		{
			name: "an expression over its memory budget fails",
			yaml: `
workflows:
  - name: w
    steps:
      - name: a
        input:
          x: 'len(map(1..5000000, # * 2))'`,
			input: `{}`,
			run: func(t *testing.T, h *harness) {
				c := wantDone(t, h, schemas.Failed, "")
				if !strings.Contains(c.Error.Message, "memory budget") {
					t.Fatalf("failure = %+v", c.Error)
				}
			},
		},
		{
			name: "a skipped fan-out has no output and starts no child",
			yaml: `
workflows:
  - name: w
    tasks:
      - name: pages
        itemListKey: pages
        steps: [{name: ocr}]
    steps:
      - name: split
      - name: fan
        task: pages
        depends: [split]
        when: len(steps.split.pages) > 5
      - name: join
        depends: [fan, split]`,
			input: `{}`,
			run: func(t *testing.T, h *harness) {
				h.ok(h.dispatched("split"), `{"pages":[1,2]}`)
				jsonEq(t, "input of join", h.dispatched("join").Input, `{"pages":[1,2]}`)
				for _, d := range h.dispatches {
					if strings.Contains(d.Step, "ocr") {
						t.Fatalf("child dispatched: %s", d.Step)
					}
				}
			},
		},
		{
			name: "a fan-out with an input mapping fans out over the mapped list; when inside the task skips per child",
			yaml: `
workflows:
  - name: w
    tasks:
      - name: pages
        itemListKey: pages
        steps:
          - name: ocr
            when: input.page % 2 == 1
          - name: mark
    steps:
      - name: split
      - name: fan
        task: pages
        depends: [split]
        input:
          pages: 'filter(steps.split.all, # > 0)'`,
			input: `{}`,
			run: func(t *testing.T, h *harness) {
				h.ok(h.dispatched("split"), `{"all":[0,1,2,3]}`)
				var ocr []string
				for _, d := range h.dispatches {
					if strings.HasSuffix(d.Step, "/ocr") {
						ocr = append(ocr, d.Step)
					}
				}
				if strings.Join(ocr, " ") != "fan[0]/ocr fan[2]/ocr" {
					t.Fatalf("ocr dispatched for %v, want the odd pages 1 and 3 (children 0 and 2)", ocr)
				}
				if s := stepStatus(h, "r/fan[1]", "ocr"); s != schemas.StepSkipped {
					t.Fatalf("ocr of child 1 is %q, want skipped", s)
				}
				for _, p := range []string{"fan[0]/ocr", "fan[2]/ocr"} {
					h.ok(h.dispatched(p), `{"page":"read"}`)
				}
				for _, p := range []string{"fan[0]/mark", "fan[1]/mark", "fan[2]/mark"} {
					h.ok(h.dispatched(p), `{"m":1}`)
				}
				wantDone(t, h, schemas.Succeeded, `{"pages":["read","read"],"m":1}`)
			},
		},
		{
			name: "a retry leaves skipped steps skipped and runs the failed one",
			yaml: `
workflows:
  - name: w
    steps:
      - name: a
        when: "false"
      - name: b
        retry: {maxAttempts: 1}`,
			input: `{}`,
			run: func(t *testing.T, h *harness) {
				h.fail(h.dispatched("b"), "boom", false)
				wantDone(t, h, schemas.Failed, "")
				h.apply(Event{Kind: EventRetry, Request: "r", Run: h.store["r"].Run()})
				if s := stepStatus(h, "r", "a"); s != schemas.StepSkipped {
					t.Fatalf("a is %q after the retry, want skipped", s)
				}
				h.ok(h.dispatched("b"), `{"b":2}`)
				if c := h.completions[len(h.completions)-1]; c.Status != schemas.Succeeded {
					t.Fatalf("completion after retry = %+v", c)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, parsed(t, tc.yaml))
			h.start("r", "w", tc.input)
			tc.run(t, h)
		})
	}
}

// wantDone checks the request has completed exactly once, with status and
// (when output is not "") that output.
func wantDone(t *testing.T, h *harness, status schemas.CompletionStatus, output string) schemas.Completion {
	t.Helper()
	if len(h.completions) != 1 {
		t.Fatalf("completions = %d, want 1 (dispatched %v)", len(h.completions), h.stepsDispatched())
	}
	c := h.completions[0]
	if c.Status != status {
		t.Fatalf("completion = %+v, want %s", c, status)
	}
	if output != "" {
		jsonEq(t, "output", c.Output, output)
	}
	return c
}

// TestRetryEvaluatesConditionsAgain: a retry of a request whose step
// failed on its when: begins that step again through its when:, and a
// fan-out that failed on its input: mapping is not taken for done.
func TestRetryEvaluatesConditionsAgain(t *testing.T) {
	h := newHarness(t, parsed(t, `
workflows:
  - name: w
    tasks:
      - {name: t, itemListKey: items, steps: [{name: x}]}
    steps:
      - name: a
        when: input.flag + 1 > 0
      - name: f
        task: t
        input: {items: "input.list[3]"}
`))
	h.start("r", "w", `{"flag":true,"list":[]}`)
	c := wantDone(t, h, schemas.Failed, "")
	h.apply(Event{Kind: EventRetry, Request: "r", Run: h.store["r"].Run()})
	if len(h.dispatches) != 0 {
		t.Fatalf("the retry dispatched %v without evaluating when:", h.stepsDispatched())
	}
	if len(h.completions) != 2 || h.completions[1].Status != schemas.Failed || h.completions[1].Error.Message != c.Error.Message {
		t.Fatalf("completions after retry = %+v, want the same failure again", h.completions)
	}
	if s := stepStatus(h, "r", "f"); s == schemas.StepSucceeded {
		t.Fatal("the fan-out that failed on its input was taken for done")
	}
}
