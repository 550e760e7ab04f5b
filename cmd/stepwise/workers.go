package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/stepwise-run/stepwise/examples"
	"github.com/stepwise-run/stepwise/examples/idp"
	wordcounts "github.com/stepwise-run/stepwise/examples/word-counts"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/worker"
)

func init() {
	register(command{
		name:    "workers",
		summary: "run the Go workers of an example against any broker",
		run:     runWorkers,
	})
}

// workersExamples collects --example values, repeated or comma-separated.
type workersExamples []string

func (e *workersExamples) String() string { return strings.Join(*e, ",") }
func (e *workersExamples) Set(s string) error {
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "all" {
			*e = append(*e, examples.Names()...)
			continue
		}
		if _, err := examples.Lookup(name); err != nil {
			return err
		}
		*e = append(*e, name)
	}
	return nil
}

// exampleHandlers gives the handler of each queue of every example, so
// that --queues and --skip-queues can leave some queues to workers in other
// languages. Its test checks it against examples.All.
var exampleHandlers = map[string]func() map[string]worker.Handler{
	"word-counts": wordcounts.Handlers,
	"idp":         func() map[string]worker.Handler { return idp.Handlers() },
}

// queueSet collects --queues or --skip-queues values, repeated or
// comma-separated.
type queueSet map[string]bool

func (q queueSet) String() string { return strings.Join(slices.Sorted(maps.Keys(q)), ",") }
func (q queueSet) Set(s string) error {
	for _, name := range strings.Split(s, ",") {
		if name = strings.TrimSpace(name); name != "" {
			q[name] = true
		}
	}
	return nil
}

// selectQueues returns the handlers of the examples' queues that only
// (when non-empty) and skip leave, by queue name. A name in only or skip
// that no example has is an error, as is a selection with no queue left.
func selectQueues(names []string, only, skip queueSet) (map[string]worker.Handler, error) {
	all := map[string]worker.Handler{}
	for _, name := range names {
		maps.Copy(all, exampleHandlers[name]())
	}
	for _, set := range []queueSet{only, skip} {
		for q := range set {
			if _, ok := all[q]; !ok {
				return nil, fmt.Errorf("stepwise: no queue %q in the examples %s; their queues are %s",
					q, strings.Join(names, ", "), strings.Join(slices.Sorted(maps.Keys(all)), ", "))
			}
		}
	}
	for q := range all {
		if len(only) > 0 && !only[q] || skip[q] {
			delete(all, q)
		}
	}
	if len(all) == 0 {
		return nil, errors.New("stepwise: --queues and --skip-queues leave no queue to work on")
	}
	return all, nil
}

func runWorkers(ctx context.Context, args []string) error {
	var (
		conn        kconn.Config
		names       workersExamples
		concurrency int
		level       slog.Level
		only        = queueSet{}
		skip        = queueSet{}
	)
	fs := flag.NewFlagSet("workers", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: stepwise workers --example NAME [flags]\n\n"+
			"Runs the Go workers of an example (%s, or all) as their own process,\n"+
			"against any broker: the embedded one of 'stepwise dev' or a real Kafka cluster\n"+
			"whose topics exist ('stepwise topics create') and where a processor runs\n"+
			"('stepwise run'). Run several to share the work. The idp example sleeps\n"+
			"%s per step (OCR: 4x) to look like real services; set %s\n"+
			"(e.g. 0 or 50ms) to change it. Stops cleanly on Ctrl-C.\n\nFlags:\n",
			strings.Join(examples.Names(), ", "), idp.DefaultLatency, idp.LatencyEnv)
		fs.PrintDefaults()
	}
	conn.RegisterFlags(fs)
	fs.Var(&names, "example", "example whose workers to run (repeatable, comma-separated, or all)")
	fs.Var(only, "queues", "work only on these queues of the examples (comma-separated); default all")
	fs.Var(skip, "skip-queues", "leave these queues (comma-separated) to other workers, e.g. ones in other languages")
	fs.IntVar(&concurrency, "concurrency", worker.DefaultConcurrency, "tasks of each queue handled at once")
	fs.TextVar(&level, "log-level", slog.LevelInfo, "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: 2}
	}
	switch {
	case fs.NArg() > 0:
		return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	case len(names) == 0:
		return &exitError{code: 2, msg: "which example? give --example " + strings.Join(examples.Names(), "|") + "|all"}
	case concurrency < 1:
		return &exitError{code: 2, msg: fmt.Sprintf("--concurrency %d: must be at least 1", concurrency)}
	}
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	handlers, err := selectQueues(names, only, skip)
	if err != nil {
		return &exitError{code: 2, msg: strings.TrimPrefix(err.Error(), "stepwise: ")}
	}
	if _, err := idp.LatencyFromEnv(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	opts := []worker.Option{worker.WithConn(conn), worker.WithLogger(log)}
	tp, flush, err := tracerFromEnv(ctx, "stepwise-workers", log)
	if err != nil {
		return err
	}
	defer flush()
	if tp != nil {
		opts = append(opts, worker.WithTracer(tp))
	}
	w, err := worker.New(opts...)
	if err != nil {
		return err
	}
	queues := slices.Sorted(maps.Keys(handlers))
	for _, q := range queues {
		w.Handle(q, handlers[q], worker.Concurrency(concurrency))
	}
	log.Info("example workers registered", "examples", strings.Join(names, ","), "queues", strings.Join(queues, ","))
	log.Info("workers running", "brokers", strings.Join(conn.Brokers, ","), "prefix", string(conn.Prefix), "concurrency", concurrency)
	return w.Run(ctx)
}
