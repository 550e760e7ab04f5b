package processors

import (
	"strings"
	"time"

	"github.com/stepwise-run/stepwise/metrics"
	"github.com/stepwise-run/stepwise/processors/machine"
	"github.com/stepwise-run/stepwise/statekey"
)

// attemptStarted returns when the attempt a result answers was dispatched,
// read from the batch's view of the step's record before the result is
// applied (zero when unknown).
func attemptStarted(st *staged, ev machine.Event) time.Time {
	inst, name := statekey.SplitStep(ev.Step)
	rec := st.Get(statekey.Format(ev.Request, inst))
	if rec == nil || rec.Steps[name] == nil || rec.Steps[name].Attempt != ev.Attempt {
		return time.Time{}
	}
	return rec.Steps[name].Started
}

// observe records what an applied (not ignored) event did, to be counted
// if the batch commits.
func observe(obs *metrics.Batch, st *staged, ev machine.Event, eff *machine.Effects, started, now time.Time) {
	workflow := ""
	switch ev.Kind {
	case machine.EventStart:
		workflow = ev.Workflow
		obs.RequestStarted(workflow)
	case machine.EventResult, machine.EventTimer:
		if rec := st.Get(ev.Request); rec != nil {
			workflow = rec.Workflow
		}
	}
	switch {
	case ev.Kind == machine.EventResult:
		var took time.Duration
		if !started.IsZero() {
			took = now.Sub(started)
		}
		obs.StepResult(workflow, ev.Step, ev.Error == nil && len(ev.Output) > 0, took)
	case ev.Kind == machine.EventTimer && ev.Timer == machine.TimerTimeout:
		obs.StepTimedOut(workflow, ev.Step)
	}
	for _, d := range eff.Dispatches {
		obs.StepDispatched(d.Workflow, d.Step, d.Attempt)
	}
	for _, c := range eff.Completions {
		obs.RequestFinished(c.Workflow, string(c.Status), c.Finished.Sub(c.Started))
	}
}

// sourceKind returns the input kind of a source name ("timers" or the
// topic's kind, the last dot-separated part of its name).
func sourceKind(src string) string {
	if strings.HasPrefix(src, "timer/") {
		return "timers"
	}
	topic, _, _ := strings.Cut(src, "/")
	return topic[strings.LastIndexByte(topic, '.')+1:]
}
