package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stepwise-run/stepwise/examples/idp"
	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/worker"
)

// ErrUnknownScenario is returned for a scenario name ScenarioByName does
// not know; the message lists the known ones.
var ErrUnknownScenario = errors.New("stepwise: unknown bench scenario")

// Names of the scenarios, in the order "all" runs them.
var ScenarioNames = []string{"linear3", "fanout100", "fanout10k", "idp"}

// Stage is one hop pair of a scenario's plan as the relay runs it: Width
// tasks on Queue, all of which must answer before the next stage starts.
type Stage struct {
	Queue string
	Width int
}

// Scenario is one workload: a workflow for the processors, the same hops as
// a plan of stages for the relay, and the worker handlers both use.
type Scenario struct {
	Name     string
	Workflow string
	Set      *topology.Set // compiled definition, for the processors
	YAML     []byte        // the definition's source, for processors run as processes
	Stages   []Stage       // the relay's plan: the same tasks as the workflow runs
	// Input is the start input of request i.
	Input func(i int) json.RawMessage
	// Handlers are the workers of the workflow, by queue; RelayHandlers
	// those of the relay (the same work on the relay's inputs).
	Handlers      map[string]worker.Handler
	RelayHandlers map[string]worker.Handler
}

// Steps returns the tasks one request runs, as the plan counts them.
func (s *Scenario) Steps() int {
	n := 0
	for _, st := range s.Stages {
		n += st.Width
	}
	return n
}

// Records returns the Kafka records one request moves through: the start,
// a task and a result per step, and the completion. Stepwise and the relay
// move the same number; Stepwise adds state records and transaction
// markers on top.
func (s *Scenario) Records() int { return 2 + 2*s.Steps() }

// Queues returns the queues of the plan in stage order, without repeats.
func (s *Scenario) Queues() []string {
	var out []string
	seen := map[string]bool{}
	for _, st := range s.Stages {
		if !seen[st.Queue] {
			seen[st.Queue] = true
			out = append(out, st.Queue)
		}
	}
	return out
}

// ScenarioByName builds a scenario. idpLatency is the simulated time of one
// idp step (OCR: four times as much), as idp.WithLatency takes it.
func ScenarioByName(name string, idpLatency time.Duration) (*Scenario, error) {
	switch name {
	case "linear3":
		return linear3()
	case "fanout100":
		return fanout("fanout100", 100)
	case "fanout10k":
		return fanout("fanout10k", 10_000)
	case "idp":
		return idpScenario(idpLatency)
	}
	return nil, fmt.Errorf("%w %q (known: %s, all)", ErrUnknownScenario, name, strings.Join(ScenarioNames, ", "))
}

// echo answers a task with its input, the cheapest possible worker.
func echo(_ context.Context, t *worker.Task) (json.RawMessage, error) { return t.Input, nil }

const linear3YAML = `# bench linear3: three sequential echo steps.
workflows:
  - name: linear3
    steps:
      - name: a
      - name: b
        depends: [a]
      - name: c
        depends: [b]
`

func linear3() (*Scenario, error) {
	set, err := topology.Parse("bench/linear3.yaml", []byte(linear3YAML))
	if err != nil {
		return nil, err
	}
	hs := map[string]worker.Handler{"a": echo, "b": echo, "c": echo}
	return &Scenario{
		Name: "linear3", Workflow: "linear3", Set: set, YAML: []byte(linear3YAML),
		Stages:        []Stage{{"a", 1}, {"b", 1}, {"c", 1}},
		Input:         func(i int) json.RawMessage { return json.RawMessage(`{"n":` + strconv.Itoa(i) + `}`) },
		Handlers:      hs,
		RelayHandlers: hs,
	}, nil
}

const fanoutYAML = `# bench %[1]s: split returns %[2]d items, one item step each, then a join.
workflows:
  - name: %[1]s
    steps:
      - name: split
      - name: items
        task: item
        depends: [split]
      - name: join
        depends: [items]
    tasks:
      - name: item
        itemListKey: items
        steps:
          - name: work
`

func fanout(name string, n int) (*Scenario, error) {
	src := fmt.Sprintf(fanoutYAML, name, n)
	set, err := topology.Parse("bench/"+name+".yaml", []byte(src))
	if err != nil {
		return nil, err
	}
	items := make([]int, n)
	for i := range items {
		items[i] = i
	}
	list, _ := json.Marshal(map[string]any{"items": items})
	split := func(context.Context, *worker.Task) (json.RawMessage, error) { return list, nil }
	// work answers {"i": <its item>}; both systems give it {"item": i}.
	work := func(_ context.Context, t *worker.Task) (json.RawMessage, error) {
		var in struct {
			Item json.RawMessage `json:"item"`
		}
		if err := t.Decode(&in); err != nil {
			return nil, worker.Permanent(err)
		}
		return json.RawMessage(`{"i":` + string(in.Item) + `}`), nil
	}
	// join answers how many outputs it joined: the processors give it
	// every item's output, the relay (which keeps no outputs) none.
	join := func(_ context.Context, t *worker.Task) (json.RawMessage, error) {
		var in struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := t.Decode(&in); err != nil {
			return nil, worker.Permanent(err)
		}
		return json.RawMessage(`{"joined":` + strconv.Itoa(len(in.Items)) + `}`), nil
	}
	hs := map[string]worker.Handler{"split": split, "work": work, "join": join}
	return &Scenario{
		Name: name, Workflow: name, Set: set, YAML: []byte(src),
		Stages:        []Stage{{"split", 1}, {"work", n}, {"join", 1}},
		Input:         func(int) json.RawMessage { return json.RawMessage(`{}`) },
		Handlers:      hs,
		RelayHandlers: hs,
	}, nil
}

// idpScenario runs the example pipeline on its default bundle with the
// example's simulated latencies. The relay's workers wait the same times
// but do no document work: the relay cannot give them the inputs the
// example's handlers need without orchestrating.
func idpScenario(latency time.Duration) (*Scenario, error) {
	set, err := idp.Definitions()
	if err != nil {
		return nil, err
	}
	docs := idp.DefaultBundle().Documents
	pages := 0
	for _, d := range docs {
		pages += len(d.Pages)
	}
	nd := len(docs)
	relay := map[string]worker.Handler{}
	for _, q := range []string{idp.QueueSplit, idp.QueueRender, idp.QueueLayout, idp.QueueClassify, idp.QueueExtract, idp.QueueAssemble} {
		relay[q] = sleepEcho(latency)
	}
	relay[idp.QueueOCR] = sleepEcho(4 * latency)
	return &Scenario{
		Name: "idp", Workflow: idp.WorkflowName, Set: set, YAML: idp.WorkflowsYAML,
		Stages: []Stage{
			{idp.QueueSplit, 1}, {idp.QueueRender, nd}, {idp.QueueOCR, pages}, {idp.QueueLayout, pages},
			{idp.QueueClassify, nd}, {idp.QueueExtract, nd}, {idp.QueueAssemble, 1},
		},
		Input:         func(int) json.RawMessage { return json.RawMessage(`{}`) },
		Handlers:      idp.Handlers(idp.WithLatency(latency)),
		RelayHandlers: relay,
	}, nil
}

// sleepEcho waits d, then echoes.
func sleepEcho(d time.Duration) worker.Handler {
	return func(ctx context.Context, t *worker.Task) (json.RawMessage, error) {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return t.Input, nil
	}
}
