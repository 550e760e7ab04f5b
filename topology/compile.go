package topology

import (
	"cmp"
	"time"
)

// compile turns validated specs into the model. It assumes validate found
// nothing: every reference resolves and no graph has a cycle.
func compile(specs []*fileSpec) *Set {
	set := &Set{Workflows: map[string]*Workflow{}}
	for _, f := range specs {
		for i, w := range f.workflows {
			namespaces := []string{""}
			if len(w.vhosts) > 0 {
				namespaces = namespaces[:0]
				for _, v := range w.vhosts {
					ns, _ := namespaceOf(v.val)
					namespaces = append(namespaces, ns)
				}
			}
			transports := fileTransports(f)
			for _, ns := range namespaces {
				wf := compileWorkflow(f.file, w, ns, transports)
				if i < len(f.canonical) {
					wf.Source = f.canonical[i]
				}
				set.Workflows[wf.Name] = wf
				set.Order = append(set.Order, wf.Name)
			}
		}
	}
	return set
}

// compileWorkflow builds one workflow for one namespace. Each namespace
// gets its own Task values because the queues of their steps differ; within
// one workflow a task is compiled once and shared by every step using it.
func compileWorkflow(file string, w *workflowSpec, namespace string, transports map[string]string) *Workflow {
	c := compiler{namespace: namespace, retry: DefaultRetry, tasks: map[string]*Task{}, transports: transports}
	if d := w.defaults; d != nil {
		c.retry = mergeRetry(c.retry, d.retry)
		if d.timeout.set {
			c.timeout = d.timeout.val
		}
	}
	for _, t := range w.tasks {
		c.tasks[t.name.val] = &Task{
			Name:        t.name.val,
			ItemListKey: t.itemListKey.val,
			ItemKey:     Singular(t.itemListKey.val),
		}
	}
	for _, t := range w.tasks {
		c.tasks[t.name.val].Graph = c.graph(t.steps, nil, "")
	}
	g := c.graph(w.steps, w.output, w.path+".output")
	g.OnFailure = c.onFailureStep(w)
	return &Workflow{
		Deadline:  w.deadline.val,
		Retention: w.retention.val,
		Name:      qualify(namespace, w.name.val),
		Namespace: namespace,
		Graph:     g,
		Tasks:     c.tasks,
		File:      file,
	}
}

type compiler struct {
	namespace string
	retry     RetryPolicy // DefaultRetry with the workflow's defaults applied
	timeout   time.Duration
	tasks     map[string]*Task
	// transports maps each queue the file marked (unqualified name) to
	// its transport; unmarked queues are TransportKafka.
	transports map[string]string
}

// fileTransports returns the transport of every queue the file marked.
func fileTransports(f *fileSpec) map[string]string {
	out := map[string]string{}
	forEachStep(f, func(s *stepSpec) {
		if s.transport.set {
			out[s.queueName()] = s.transport.val
		}
	})
	return out
}

func (c *compiler) graph(specs []*stepSpec, output []mappingSpec, outputPath string) *Graph {
	g := &Graph{Steps: make([]*Step, 0, len(specs)), ByName: make(map[string]*Step, len(specs))}
	g.Output = compileMappings(output, outputPath)
	for _, s := range specs {
		st := &Step{Name: s.name.val, Depends: []string{Start}}
		if len(s.depends) > 0 {
			st.Depends = make([]string, len(s.depends))
			for i, d := range s.depends {
				st.Depends[i] = d.val
			}
		}
		if s.task.set {
			st.Task = c.tasks[s.task.val]
		} else if s.wait != nil {
			compileWait(st, s)
		} else if s.sleep.set {
			st.Sleep = s.sleep.val
		} else {
			queue := st.Name
			if s.queue.set {
				queue = s.queue.val
			}
			st.Queue = qualifyQueue(c.namespace, queue)
			st.Transport = cmp.Or(c.transports[queue], TransportKafka)
			st.Retry = mergeRetry(c.retry, s.retry)
			st.Timeout = c.timeout
			if s.timeout.set {
				st.Timeout = s.timeout.val
			}
			st.HeartbeatTimeout = s.heartbeat.val
		}
		st.When = compileExprSpec(s.when, s.path+".when")
		st.Input = compileMappings(s.input, s.path+".input")
		st.ContinueOnFailure = s.continueOnFailure.val
		st.Tolerate = compileTolerance(s.tolerate)
		g.Steps = append(g.Steps, st)
		g.ByName[st.Name] = st
	}
	// Walking steps in declaration order keeps Successors in declaration
	// order too.
	for _, st := range g.Steps {
		for _, d := range st.Depends {
			if d != Start {
				dep := g.ByName[d]
				dep.Successors = append(dep.Successors, st)
			}
		}
	}
	for _, st := range g.Steps {
		if len(st.Successors) == 0 {
			g.Terminal = append(g.Terminal, st)
		}
	}
	return g
}

// mergeRetry applies the fields a retry block sets over base.
func mergeRetry(base RetryPolicy, r *retrySpec) RetryPolicy {
	if r == nil {
		return base
	}
	if r.maxAttempts.set {
		base.MaxAttempts = r.maxAttempts.val
	}
	if r.initial.set {
		base.Initial = r.initial.val
	}
	if r.max.set {
		base.Max = r.max.val
	}
	if r.multiplier.set {
		base.Multiplier = r.multiplier.val
	}
	return base
}
