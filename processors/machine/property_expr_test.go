package machine

import (
	"math/rand/v2"
	"time"

	"github.com/expr-lang/expr"

	"github.com/stepwise-run/stepwise/topology"
)

// propertyConditions are the when: expressions the property test puts on
// steps: both outcomes over the request's input, always false, and one that
// fails to evaluate (a boolean plus a number) and so fails its step.
var propertyConditions = []string{"input.flip", "!input.flip", "false", "true", "input.flip + 1 > 0"}

// withConditions puts a when: on about a third of the steps of every graph
// of wf (nested tasks too), and an input: mapping on about a fifth of its
// plain steps, so that the property test sees skips, skips propagating to
// dependents and joins, mappings and evaluation errors; and
// continueOnFailure on about a fifth of the plain steps, tolerate: on half
// of the fan-out steps, and a failure handler on half of the workflows.
func withConditions(r *rand.Rand, wf *topology.Workflow) {
	compile := func(src string, asBool bool) *topology.Expr {
		opts := []expr.Option{expr.Env(map[string]any{"input": map[string]any{}, "steps": map[string]any{}})}
		if asBool {
			opts = append(opts, expr.AsBool())
		}
		p, err := expr.Compile(src, opts...)
		if err != nil {
			panic(err)
		}
		return &topology.Expr{Source: src, Path: "property", Program: p}
	}
	seen := map[*topology.Graph]bool{}
	var walk func(g *topology.Graph)
	walk = func(g *topology.Graph) {
		if seen[g] {
			return
		}
		seen[g] = true
		for _, st := range g.Steps {
			if r.IntN(3) == 0 {
				// One in fifteen or so fails to evaluate.
				c := propertyConditions[r.IntN(len(propertyConditions))]
				if c == propertyConditions[4] && r.IntN(3) != 0 {
					c = "true"
				}
				st.When = compile(c, true)
			}
			if st.Task == nil && r.IntN(5) == 0 {
				st.Input = []topology.Mapping{
					{Key: "flip", Expr: compile("input.flip", false)},
					{Key: "seen", Expr: compile("len(steps)", false)},
				}
			}
			if st.Task == nil && r.IntN(5) == 0 {
				st.ContinueOnFailure = true
			}
			if st.Task != nil && r.IntN(2) == 0 {
				st.Tolerate = &topology.Tolerance{Count: r.IntN(3)}
				if r.IntN(2) == 0 {
					st.Tolerate = &topology.Tolerance{Percent: 50}
				}
			}
			if st.Task != nil {
				walk(st.Task.Graph)
			}
		}
	}
	walk(wf.Graph)
	if r.IntN(2) == 0 {
		wf.Graph.OnFailure = &topology.Step{Name: topology.OnFailureStep, Queue: "handler",
			Retry: topology.RetryPolicy{MaxAttempts: 2, Initial: time.Second, Max: time.Second, Multiplier: 1}}
	}
}
