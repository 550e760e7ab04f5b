package topology

import "time"

// The spec types are the file's content as written, each value with the
// position and field path it came from, so that the validator can point at
// the exact place of a problem. The loader fills them, the validator checks
// them, the compiler turns them into the exported model.

type fileSpec struct {
	file        string
	workflows   []*workflowSpec
	workflowsAt pos // the workflows key, or the document start
	// unreadable is set when the loader could not find a workflows list
	// at all (empty file, YAML syntax error, wrong shape) and said so.
	unreadable bool
	// canonical holds, for each entry of workflows, a definition file
	// with that workflow alone (see Workflow.Source); set once the file
	// validated.
	canonical [][]byte
}

// str is a scalar string field. set is false when the key was absent (or
// null); at is then the position of the enclosing mapping. bad is set when
// the value was not a scalar, which the loader already reported.
type str struct {
	val string
	at  pos
	set bool
	bad bool
}

type duration struct {
	val time.Duration
	at  pos
	set bool
}

type workflowSpec struct {
	bad       bool   // not a mapping (reported); only its position is known
	path      string // "workflows[0]"
	at        pos
	name      str
	vhosts    []str
	steps     []*stepSpec
	stepsAt   pos
	tasks     []*taskSpec
	defaults  *defaultsSpec
	retention duration
	deadline  duration      // timers.go
	output    []mappingSpec // expressions (expr.go)
	onFailure str           // failure.go
}

type defaultsSpec struct {
	path    string // "workflows[0].defaults"
	retry   *retrySpec
	timeout duration
}

type taskSpec struct {
	bad         bool   // not a mapping (reported); only its position is known
	path        string // "workflows[0].tasks[1]"
	at          pos
	name        str
	itemListKey str
	steps       []*stepSpec
	stepsAt     pos
}

type stepSpec struct {
	bad     bool   // not a mapping (reported); only its position is known
	path    string // "workflows[0].steps[2]"
	at      pos
	name    str
	depends []str
	task    str
	queue   str
	// transport is the queue's "transport" when the queue was written as
	// a mapping ({name: ocr, transport: amqp}); unset for a plain name.
	transport str
	retry     *retrySpec
	timeout   duration
	wait      *waitSpec     // wait.go
	sleep     duration      // timers.go
	heartbeat duration      // heartbeat.go
	when      exprSpec      // expr.go
	input     []mappingSpec // expr.go
	// continueOnFailure: failure.go
	continueOnFailure boolField
	tolerate          *toleranceSpec
}

// retrySpec is a possibly partial retry block; unset fields are taken from
// the level above (workflow defaults, then DefaultRetry).
type retrySpec struct {
	path        string // "...retry"
	at          pos
	maxAttempts struct {
		val int
		at  pos
		set bool
	}
	initial    duration
	max        duration
	multiplier struct {
		val float64
		at  pos
		set bool
	}
}
