package topology

import (
	"errors"
	"strings"
	"testing"
)

// parseErrors parses src and returns its problems; it fails the test when
// src is valid.
func parseErrors(t *testing.T, src string) ValidationErrors {
	t.Helper()
	set, err := Parse("wf.yaml", []byte(src))
	if err == nil {
		t.Fatalf("Parse succeeded (%v), want an error", set.Order)
	}
	var ve ValidationErrors
	if !errors.As(err, &ve) {
		t.Fatalf("err is %T (%v), want ValidationErrors", err, err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Error("errors.Is(err, ErrInvalid) is false")
	}
	for _, e := range ve {
		if e.File != "wf.yaml" {
			t.Errorf("File = %q in %s", e.File, e)
		}
	}
	return ve
}

// A valid step list to complete workflows whose other parts are under test.
const okSteps = "    steps: [{name: s}]\n"

func TestValidationRules(t *testing.T) {
	tests := []struct {
		rule string
		src  string
		// The one problem expected.
		line, col int
		path      string
		msg       string // the whole message
	}{
		{
			rule: "empty file",
			src:  "",
			path: "", msg: `empty file: expected a top-level "workflows:" list`,
		},
		{
			rule: "comments only",
			src:  "# nothing yet\n",
			path: "", msg: `empty file: expected a top-level "workflows:" list`,
		},
		{
			rule: "no workflows key",
			src:  "version: 1\n",
			line: 1, col: 1, path: "version", msg: `unknown field "version" (known: workflows)`,
		},
		{
			rule: "empty workflows list",
			src:  "workflows: []\n",
			line: 1, col: 1, path: "workflows", msg: "no workflows defined",
		},
		{
			rule: "top level not a mapping",
			src:  "- name: w\n",
			line: 1, col: 1, path: "", msg: `expected a mapping with a top-level "workflows:" list, got a list`,
		},
		{
			rule: "YAML syntax",
			src:  "workflows:\n  - name: w\n    steps: a: b\n",
			line: 3, col: 1, path: "", msg: "invalid YAML: mapping values are not allowed in this context",
		},
		{
			rule: "several documents",
			src:  "workflows:\n  - name: w\n" + okSteps + "---\nworkflows: []\n",
			line: 4, col: 1, path: "", msg: `more than one YAML document: put every workflow in one "workflows:" list`,
		},
		{
			rule: "missing workflow name",
			src:  "workflows:\n  - steps: [{name: s}]\n",
			line: 2, col: 5, path: "workflows[0].name", msg: "missing workflow name",
		},
		{
			rule: "empty workflow name",
			src:  "workflows:\n  - name: ''\n" + okSteps,
			line: 2, col: 11, path: "workflows[0].name", msg: "empty workflow name",
		},
		{
			rule: "invalid workflow name",
			src:  "workflows:\n  - name: book.counts\n" + okSteps,
			line: 2, col: 11, path: "workflows[0].name",
			msg: `invalid workflow name "book.counts": must be a letter, then at most 99 letters, digits, '_' or '-'`,
		},
		{
			rule: "name too long",
			src:  "workflows:\n  - name: w" + strings.Repeat("x", 100) + "\n" + okSteps,
			line: 2, col: 11, path: "workflows[0].name",
			msg: `invalid workflow name "w` + strings.Repeat("x", 100) + `": must be a letter, then at most 99 letters, digits, '_' or '-'`,
		},
		{
			rule: "invalid step name",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: 2nd\n",
			line: 4, col: 15, path: "workflows[0].steps[0].name",
			msg: `invalid step name "2nd": must be a letter, then at most 99 letters, digits, '_' or '-'`,
		},
		{
			rule: "missing step name",
			src:  "workflows:\n  - name: w\n    steps:\n      - queue: q\n",
			line: 4, col: 9, path: "workflows[0].steps[0].name", msg: "missing step name",
		},
		{
			rule: "invalid task name",
			src:  "workflows:\n  - name: w\n" + okSteps + "    tasks:\n      - name: t/1\n        itemListKey: xs\n        steps: [{name: s}]\n",
			line: 5, col: 15, path: "workflows[0].tasks[0].name",
			msg: `invalid task name "t/1": must be a letter, then at most 99 letters, digits, '_' or '-'`,
		},
		{
			rule: "invalid queue name",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: s\n        queue: my queue\n",
			line: 5, col: 16, path: "workflows[0].steps[0].queue",
			msg: `invalid queue name "my queue": must be a letter, then at most 99 letters, digits, '_' or '-'`,
		},
		{
			rule: "reserved step name __start__",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: __start__\n",
			line: 4, col: 15, path: "workflows[0].steps[0].name",
			msg: `"__start__" is reserved: it stands for the start or the end of the graph`,
		},
		{
			rule: "reserved step name __end__",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: s\n      - name: __end__\n",
			line: 5, col: 15, path: "workflows[0].steps[1].name",
			msg: `"__end__" is reserved: it stands for the start or the end of the graph`,
		},
		{
			rule: "__end__ in depends",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: s\n        depends: [__start__, __end__]\n",
			line: 5, col: 30, path: "workflows[0].steps[0].depends",
			msg: `"__end__" cannot be a dependency: it runs after every step`,
		},
		{
			rule: "duplicate workflow",
			src:  "workflows:\n  - name: w\n" + okSteps + "  - name: w\n" + okSteps,
			line: 4, col: 11, path: "workflows[1].name", msg: `duplicate workflow "w" (also workflows[0])`,
		},
		{
			rule: "duplicate workflow through a vhost",
			src:  "workflows:\n  - name: w\n" + okSteps + "  - name: w\n    vhosts: [/]\n" + okSteps,
			line: 4, col: 11, path: "workflows[1].name", msg: `duplicate workflow "w" (also workflows[0])`,
		},
		{
			rule: "duplicate step",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: a\n      - name: b\n      - name: a\n",
			line: 6, col: 15, path: "workflows[0].steps[2].name", msg: `duplicate step "a" (also workflows[0].steps[0])`,
		},
		{
			rule: "duplicate task",
			src: "workflows:\n  - name: w\n    steps: [{name: s, task: t}]\n    tasks:\n" +
				"      - {name: t, itemListKey: xs, steps: [{name: a}]}\n" +
				"      - {name: t, itemListKey: ys, steps: [{name: b}]}\n",
			line: 6, col: 16, path: "workflows[0].tasks[1].name", msg: `duplicate task "t" (also workflows[0].tasks[0])`,
		},
		{
			rule: "unknown dependency with a suggestion",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: ocr\n      - name: classify\n        depends: [ocr, orc]\n",
			line: 6, col: 24, path: "workflows[0].steps[1].depends", msg: `unknown step "orc"; did you mean "ocr"?`,
		},
		{
			rule: "unknown dependency",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: a\n        depends: [ocr]\n",
			line: 5, col: 19, path: "workflows[0].steps[0].depends", msg: `unknown step "ocr"`,
		},
		{
			rule: "dependency on a step of a task",
			src: "workflows:\n  - name: w\n    steps:\n      - name: a\n        task: t\n      - name: b\n        depends: [inner]\n" +
				"    tasks:\n      - {name: t, itemListKey: xs, steps: [{name: inner}]}\n",
			line: 7, col: 19, path: "workflows[0].steps[1].depends", msg: `unknown step "inner"`,
		},
		{
			rule: "self dependency",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: a\n        depends: [a]\n",
			line: 5, col: 19, path: "workflows[0].steps[0].depends", msg: `step "a" depends on itself`,
		},
		{
			rule: "dependency listed twice",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: a\n      - name: b\n        depends: [a, a]\n",
			line: 6, col: 22, path: "workflows[0].steps[1].depends", msg: `"a" listed twice`,
		},
		{
			rule: "dependency cycle",
			src: "workflows:\n  - name: w\n    steps:\n      - name: start\n" +
				"      - name: a\n        depends: [start, c]\n" +
				"      - name: b\n        depends: [a]\n" +
				"      - name: c\n        depends: [b]\n",
			line: 6, col: 26, path: "workflows[0].steps[1].depends", msg: "dependency cycle: a -> b -> c -> a",
		},
		{
			rule: "dependency cycle inside a task",
			src: "workflows:\n  - name: w\n    steps: [{name: s, task: t}]\n    tasks:\n      - name: t\n        itemListKey: xs\n        steps:\n" +
				"          - {name: x, depends: [y]}\n          - {name: y, depends: [x]}\n",
			line: 8, col: 33, path: "workflows[0].tasks[0].steps[0].depends", msg: "dependency cycle: x -> y -> x",
		},
		{
			rule: "unknown task",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: a\n        task: pages\n",
			line: 5, col: 15, path: "workflows[0].steps[0].task", msg: `unknown task "pages" (the workflow has no tasks)`,
		},
		{
			rule: "unknown task with a suggestion",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: a\n        task: page\n    tasks:\n      - {name: pages, itemListKey: xs, steps: [{name: s}]}\n",
			line: 5, col: 15, path: "workflows[0].steps[0].task", msg: `unknown task "page"; did you mean "pages"?`,
		},
		{
			rule: "task without itemListKey",
			src:  "workflows:\n  - name: w\n    steps: [{name: s, task: t}]\n    tasks:\n      - name: t\n        steps: [{name: a}]\n",
			line: 5, col: 9, path: "workflows[0].tasks[0].itemListKey",
			msg: "missing itemListKey: the key of the list, in the fan-out step's input, whose elements each start one run of the task",
		},
		{
			rule: "task with an empty itemListKey",
			src:  "workflows:\n  - name: w\n    steps: [{name: s, task: t}]\n    tasks:\n      - name: t\n        itemListKey: \"\"\n        steps: [{name: a}]\n",
			line: 6, col: 22, path: "workflows[0].tasks[0].itemListKey",
			msg: "missing itemListKey: the key of the list, in the fan-out step's input, whose elements each start one run of the task",
		},
		{
			rule: "workflow without steps",
			src:  "workflows:\n  - name: w\n    steps: []\n",
			line: 3, col: 5, path: "workflows[0].steps", msg: "no steps: a workflow needs at least one",
		},
		{
			rule: "workflow without a steps key",
			src:  "workflows:\n  - name: w\n",
			line: 2, col: 5, path: "workflows[0].steps", msg: "no steps: a workflow needs at least one",
		},
		{
			rule: "task without steps",
			src:  "workflows:\n  - name: w\n    steps: [{name: s, task: t}]\n    tasks:\n      - name: t\n        itemListKey: xs\n",
			line: 5, col: 9, path: "workflows[0].tasks[0].steps", msg: "no steps: a task needs at least one",
		},
		{
			rule: "task reference cycle",
			src: "workflows:\n  - name: w\n    steps: [{name: s, task: a}]\n    tasks:\n" +
				"      - {name: a, itemListKey: xs, steps: [{name: x, task: b}]}\n" +
				"      - {name: b, itemListKey: ys, steps: [{name: y}, {name: z, task: a}]}\n",
			line: 6, col: 71, path: "workflows[0].tasks[1].steps[1].task", msg: "task reference cycle: a -> b -> a",
		},
		{
			rule: "task running itself",
			src:  "workflows:\n  - name: w\n    steps: [{name: s, task: a}]\n    tasks:\n      - name: a\n        itemListKey: xs\n        steps:\n          - name: again\n            task: a\n",
			line: 9, col: 19, path: "workflows[0].tasks[0].steps[0].task", msg: "task reference cycle: a -> a",
		},
		{
			rule: "queue on a fan-out step",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: s\n        task: t\n        queue: q\n    tasks:\n      - {name: t, itemListKey: xs, steps: [{name: a}]}\n",
			line: 6, col: 16, path: "workflows[0].steps[0].queue",
			msg: "a fan-out step (task: t) has no queue: its task's steps are dispatched, each to its own queue",
		},
		{
			rule: "retry on a fan-out step",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: s\n        task: t\n        retry: {maxAttempts: 2}\n    tasks:\n      - {name: t, itemListKey: xs, steps: [{name: a}]}\n",
			line: 6, col: 16, path: "workflows[0].steps[0].retry",
			msg: "a fan-out step (task: t) is not dispatched: set retry on its task's steps",
		},
		{
			rule: "timeout on a fan-out step",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: s\n        task: t\n        timeout: 1s\n    tasks:\n      - {name: t, itemListKey: xs, steps: [{name: a}]}\n",
			line: 6, col: 18, path: "workflows[0].steps[0].timeout",
			msg: "a fan-out step (task: t) is not dispatched: set timeout on its task's steps",
		},
		{
			rule: "duration without unit",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: s\n        timeout: 30\n",
			line: 5, col: 18, path: "workflows[0].steps[0].timeout", msg: `invalid duration "30" (a unit is required, e.g. 30s, 500ms, 2m)`,
		},
		{
			rule: "malformed duration",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: s\n        retry: {initial: soon}\n",
			line: 5, col: 26, path: "workflows[0].steps[0].retry.initial", msg: `invalid duration "soon"`,
		},
		{
			rule: "negative timeout",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: s\n        timeout: -5s\n",
			line: 5, col: 18, path: "workflows[0].steps[0].timeout", msg: "must be positive, got -5s (leave it out for no timeout)",
		},
		{
			rule: "zero initial backoff",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: s\n        retry: {initial: 0s}\n",
			line: 5, col: 26, path: "workflows[0].steps[0].retry.initial", msg: "must be positive, got 0s",
		},
		{
			rule: "zero max backoff in defaults",
			src:  "workflows:\n  - name: w\n    defaults:\n      retry:\n        max: 0s\n" + okSteps,
			line: 5, col: 14, path: "workflows[0].defaults.retry.max", msg: "must be positive, got 0s",
		},
		{
			rule: "zero timeout in defaults",
			src:  "workflows:\n  - name: w\n    defaults: {timeout: 0s}\n" + okSteps,
			line: 3, col: 25, path: "workflows[0].defaults.timeout", msg: "must be positive, got 0s (leave it out for no timeout)",
		},
		{
			rule: "maxAttempts below 1",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: s\n        retry: {maxAttempts: 0}\n",
			line: 5, col: 30, path: "workflows[0].steps[0].retry.maxAttempts", msg: "must be at least 1 (the first attempt counts), got 0",
		},
		{
			rule: "maxAttempts not a number",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: s\n        retry: {maxAttempts: many}\n",
			line: 5, col: 30, path: "workflows[0].steps[0].retry.maxAttempts", msg: `must be a whole number, got "many"`,
		},
		{
			rule: "multiplier below 1",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: s\n        retry: {multiplier: 0.5}\n",
			line: 5, col: 29, path: "workflows[0].steps[0].retry.multiplier", msg: "must be at least 1, got 0.5",
		},
		{
			rule: "unknown field with a suggestion",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: a\n      - name: b\n        dependz: [a]\n",
			line: 6, col: 9, path: "workflows[0].steps[1].dependz", msg: `unknown field "dependz"; did you mean "depends"?`,
		},
		{
			rule: "unknown field in another case",
			src:  "workflows:\n  - name: w\n    steps: [{name: s, task: t}]\n    tasks:\n      - name: t\n        itemlistkey: xs\n        itemListKey: xs\n        steps: [{name: a}]\n",
			line: 6, col: 9, path: "workflows[0].tasks[0].itemlistkey", msg: `unknown field "itemlistkey"; did you mean "itemListKey"?`,
		},
		{
			rule: "unknown field in retry",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: s\n        retry: {attempts: 3}\n",
			line: 5, col: 17, path: "workflows[0].steps[0].retry.attempts",
			msg: `unknown field "attempts" (known: maxAttempts, initial, max, multiplier)`,
		},
		{
			rule: "repeated field",
			src:  "workflows:\n  - name: w\n    name: v\n" + okSteps,
			line: 3, col: 5, path: "workflows[0].name", msg: `repeated field "name"`,
		},
		{
			rule: "depends not a list",
			src:  "workflows:\n  - name: w\n    steps:\n      - name: a\n      - name: b\n        depends: a\n",
			line: 6, col: 18, path: "workflows[0].steps[1].depends",
			msg: `must be a list, got "a" (write [a, b] or one "- a" line per item)`,
		},
		{
			rule: "name not a single value",
			src:  "workflows:\n  - name: [w]\n" + okSteps,
			line: 2, col: 11, path: "workflows[0].name", msg: "must be a single value, got a list",
		},
		{
			rule: "step not a mapping",
			src:  "workflows:\n  - name: w\n    steps:\n      - a\n",
			line: 4, col: 9, path: "workflows[0].steps[0]", msg: `must be a mapping of fields, got "a"`,
		},
		{
			rule: "vhost without a slash",
			src:  "workflows:\n  - name: w\n    vhosts: [domain]\n" + okSteps,
			line: 3, col: 14, path: "workflows[0].vhosts", msg: `vhost "domain" must start with "/", e.g. "/domain"`,
		},
		{
			rule: "invalid vhost",
			src:  "workflows:\n  - name: w\n    vhosts: [/a/b]\n" + okSteps,
			line: 3, col: 14, path: "workflows[0].vhosts",
			msg: `invalid vhost "/a/b": after the "/" it must be a letter, then at most 99 letters, digits, '_' or '-'`,
		},
		{
			rule: "vhost listed twice",
			src:  "workflows:\n  - name: w\n    vhosts: [/a, /a]\n" + okSteps,
			line: 3, col: 18, path: "workflows[0].vhosts", msg: `vhost "/a" listed twice`,
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

// TestAllProblemsReported checks that one parse reports every problem of a
// file, in position order, rather than stopping at the first.
func TestAllProblemsReported(t *testing.T) {
	src := `workflows:
  - name: book-word-counts
    steps:
      - name: book-split
        queue: split queue
      - name: section-counts
        task: word-count
        depends: [ book-splt ]
      - name: sum-splits
        dependz: [ section-counts ]
        timeout: 10
    tasks:
      - name: word-counts
        steps: []
  - name: other
    steps:
      - name: a
        depends: [b]
      - name: b
        depends: [a]
`
	errs := parseErrors(t, src)
	want := []struct {
		line int
		path string
	}{
		{5, "workflows[0].steps[0].queue"},
		{7, "workflows[0].steps[1].task"},
		{8, "workflows[0].steps[1].depends"},
		{10, "workflows[0].steps[2].dependz"},
		{11, "workflows[0].steps[2].timeout"},
		{13, "workflows[0].tasks[0].itemListKey"},
		{14, "workflows[0].tasks[0].steps"},
		{18, "workflows[1].steps[0].depends"},
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(errs), len(want), errs)
	}
	for i, w := range want {
		if errs[i].Line != w.line || errs[i].Path != w.path {
			t.Errorf("problem %d: got %s, want line %d path %s", i, errs[i], w.line, w.path)
		}
	}
	text := errs.Error()
	if lines := strings.Split(text, "\n"); len(lines) != len(want) || !strings.HasPrefix(lines[0], "wf.yaml:5:16: workflows[0].steps[0].queue: ") {
		t.Errorf("Error() =\n%s", text)
	}
	var fe *FieldError
	if !errors.As(error(errs), &fe) || fe != errs[0] {
		t.Error("errors.As does not reach the first FieldError")
	}
}

func TestFieldErrorFormat(t *testing.T) {
	e := &FieldError{File: "a.yaml", Line: 3, Column: 7, Path: "workflows[0].steps[2].depends", Msg: `unknown step "ocr"`}
	if got, want := e.Error(), `a.yaml:3:7: workflows[0].steps[2].depends: unknown step "ocr"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e = &FieldError{File: "a.yaml", Msg: "empty file"}
	if got, want := e.Error(), "a.yaml: empty file"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// Aliases and merge keys are plain YAML and must work.
func TestAnchorsAndMergeKeys(t *testing.T) {
	set, err := Parse("a.yaml", []byte(`
workflows:
  - name: w
    steps:
      - &base
        name: a
        timeout: 5s
      - <<: *base
        name: b
        depends: [a]
`))
	if err != nil {
		t.Fatal(err)
	}
	b := set.Lookup("w").Graph.ByName["b"]
	if b == nil || b.Timeout.String() != "5s" || b.Depends[0] != "a" {
		t.Errorf("merged step = %+v", b)
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"name", "depends", "task", "queue", "retry", "timeout"}
	tests := []struct{ in, want string }{
		{"dependz", "depends"},
		{"Depends", "depends"},
		{"timout", "timeout"},
		{"nam", "name"},
		{"xyz", ""},
		{"priority", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.in, known); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
