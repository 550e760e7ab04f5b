// Package topology turns workflow definition files (YAML) into validated,
// compiled workflow graphs and the plan of Kafka topics they need.
//
// # Where it sits
//
// It is the first stage of the data flow and is pure: no I/O besides reading
// the files it is given. The processors compile definitions with it to know
// which step runs after which; `stepwise topics` asks it for the topic plan;
// `stepwise validate` and `stepwise graph` print what it finds.
//
// In: definition files (Load) or bytes (Parse). Out: a Set of compiled
// Workflows, or ValidationErrors listing every problem at once, each as
// "file:line:col: workflows[0].steps[2].depends: message".
//
// Inside, three stages, one file each: the loader (load.go) walks the
// yaml.Node tree and checks structure (unknown fields, kinds, durations);
// the validator (validate.go, whose comment lists every rule) checks
// meaning (names, references, cycles); the compiler (compile.go) builds the
// model of model.go. Set.Validate re-checks a compiled set's invariants.
//
// # Format
//
// The format of the original RabbitMQ workflow manager loads unchanged:
//
//	workflows:
//	  - name: book-word-counts
//	    steps:
//	      - name: book-split
//	      - name: section-counts
//	        task: word-counts
//	        depends: [ book-split ]
//	    tasks:
//	      - name: word-counts
//	        itemListKey: sections
//	        steps:
//	          - name: segment-word-counts
//
// A step without depends starts with the request (it depends on __start__);
// a graph ends when every step is done (__end__ depends on every step that
// nothing else depends on). A step's queue defaults to its name. A step
// with task: is a fan-out step: it is not dispatched itself (it has no
// queue) but runs the task's steps once per element of the input list named
// by the task's itemListKey. Unlike the original, dependencies may be
// declared after the step using them; cycles are reported instead.
//
// # Vhosts
//
// The original's "vhosts: [/x, /y]" is accepted. Each vhost yields a
// separate workflow: for /x it is named "x/<name>", has Namespace "x", and
// every queue is prefixed "x.", so its tasks go to the topic
// "stepwise.tasks.x.<queue>". The vhost "/" is the default namespace (the
// plain name and queues). A workflow listed under vhosts exists only under
// them.
//
// # Extensions
//
// A task's step may itself run a task (nested fan-out); tasks must not run
// each other in a cycle. Steps take retry: {maxAttempts, initial, max,
// multiplier} and timeout: (Go durations such as 500ms, 30s, 2m). A
// workflow's defaults: {retry, timeout} apply to every dispatched step that
// does not set its own; retry blocks may be partial and merge field by
// field over DefaultRetry, then the workflow's defaults, then the step's.
// Unknown fields are errors, with a suggestion for likely typos.
package topology
