package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/stepwise-run/stepwise/examples"
	"github.com/stepwise-run/stepwise/examples/idp"
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

func runWorkers(ctx context.Context, args []string) error {
	var (
		conn        kconn.Config
		names       workersExamples
		concurrency int
		level       slog.Level
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
	if _, err := idp.LatencyFromEnv(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	w, err := worker.New(worker.WithConn(conn), worker.WithLogger(log))
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		e, _ := examples.Lookup(name) // checked by the flag
		e.Register(w, worker.Concurrency(concurrency))
		log.Info("example workers registered", "example", e.Name, "workflow", e.Workflow)
	}
	log.Info("workers running", "brokers", strings.Join(conn.Brokers, ","), "prefix", string(conn.Prefix), "concurrency", concurrency)
	return w.Run(ctx)
}
