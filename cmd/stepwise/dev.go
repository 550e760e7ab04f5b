package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepwise-run/stepwise/api"
	"github.com/stepwise-run/stepwise/examples"
	"github.com/stepwise-run/stepwise/examples/idp"
	"github.com/stepwise-run/stepwise/internal/devbroker"
	"github.com/stepwise-run/stepwise/metrics"
	"github.com/stepwise-run/stepwise/processors"
	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/worker"
)

func init() {
	register(command{
		name:    "dev",
		summary: "run an embedded broker, a processor and (with --examples) the examples' workers",
		run:     runDev,
	})
}

// devDefaultData is where dev keeps the broker's data unless told otherwise.
const devDefaultData = ".stepwise-dev"

type devOptions struct {
	files      fileFlags
	examples   bool
	addr       string
	data       string
	inMemory   bool
	partitions int
	prefix     string
	http       string
	tokensFile string
	noAuth     bool
	metrics    bool
	logLevel   slog.Level
}

func devParse(args []string, stderr io.Writer) (*devOptions, error) {
	o := &devOptions{}
	fs := newFlagSet("dev", stderr,
		"Usage: stepwise dev [-f FILE]... [--examples] [flags]\n\n"+
			"Runs everything a newcomer needs in one process: an embedded Kafka-protocol\n"+
			"broker listening on --kafka-addr, the topics of the workflows, a processor,\n"+
			"and with --examples the workers of the bundled examples (word-counts, idp).\n"+
			"Workers in any language connect to the broker as to a real Kafka cluster.\n"+
			"Stops cleanly on Ctrl-C.")
	fs.Var(&o.files, "f", "workflow definition file (repeatable)")
	fs.BoolVar(&o.examples, "examples", false, "load the examples' workflows and run their workers in-process")
	fs.StringVar(&o.addr, "kafka-addr", devbroker.DefaultAddr, "host:port the broker listens on and advertises (port 0: any free port)")
	fs.StringVar(&o.data, "data", "", "directory keeping the broker's data across restarts (default ./"+devDefaultData+")")
	fs.BoolVar(&o.inMemory, "in-memory", false, "keep the broker's data in memory only; it is gone on exit")
	fs.IntVar(&o.partitions, "partitions", devbroker.DefaultPartitions, "partitions of each topic created")
	fs.StringVar(&o.prefix, "prefix", string(topology.DefaultPrefix), "topic prefix")
	fs.StringVar(&o.http, "http", api.DefaultAddr, "address of the HTTP API and web UI (\"\": none)")
	fs.StringVar(&o.tokensFile, "tokens-file", "", "file of bearer tokens the API accepts (also $"+api.TokensEnv+"); none: no token needed on loopback")
	fs.BoolVar(&o.metrics, "metrics", false, "export the processor's, API's and examples' workers' Prometheus metrics at /metrics of --http")
	fs.BoolVar(&o.noAuth, "insecure-no-auth", false, "serve a non-loopback --http address without any token")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil
		}
		return nil, &exitError{code: 2}
	}
	switch {
	case fs.NArg() > 0:
		return nil, &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q; definition files go after -f", fs.Arg(0))}
	case len(o.files) == 0 && !o.examples:
		return nil, &exitError{code: 2, msg: "nothing to run: give definition files with -f, or --examples"}
	case o.inMemory && o.data != "":
		return nil, &exitError{code: 2, msg: "--data and --in-memory exclude each other"}
	case o.metrics && o.http == "":
		return nil, &exitError{code: 2, msg: "--metrics needs --http ADDR to serve them on"}
	case o.partitions < 1:
		return nil, &exitError{code: 2, msg: fmt.Sprintf("--partitions %d: must be at least 1", o.partitions)}
	}
	if !o.inMemory && o.data == "" {
		o.data = devDefaultData
	}
	if o.inMemory {
		o.data = ""
	}
	return o, nil
}

// devDefinitions loads the files given and, with --examples, the
// examples' workflows.
func devDefinitions(o *devOptions) (*topology.Set, error) {
	var sets []*topology.Set
	if len(o.files) > 0 {
		s, err := topology.Load(o.files...)
		if err != nil {
			return nil, err
		}
		sets = append(sets, s)
	}
	if o.examples {
		s, err := examples.Definitions()
		if err != nil {
			return nil, err
		}
		sets = append(sets, s)
	}
	return examples.Merge(sets...)
}

func runDev(ctx context.Context, args []string) error {
	o, err := devParse(args, os.Stderr)
	if o == nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: o.logLevel}))
	set, err := devDefinitions(o)
	if err != nil {
		return err
	}
	if o.examples {
		if _, err := idp.LatencyFromEnv(); err != nil {
			return err
		}
	}

	b, err := devbroker.Start(devbroker.WithAddr(o.addr), devbroker.WithDataDir(o.data), devbroker.WithLogger(log))
	if err != nil {
		return err
	}
	defer b.Close() // last: the processor and workers finish with it
	prefix := topology.Prefix(o.prefix)
	if err := b.CreateTopics(ctx, set, prefix, int32(o.partitions)); err != nil {
		return err
	}
	conn := b.Conn(prefix)

	var reg *prometheus.Registry
	var workerOpts []worker.Option
	pcfg := processors.Config{Conn: conn, Set: set, ReplicaID: "dev", Logger: log}
	if o.metrics {
		reg = metrics.NewRegistry()
		pcfg.Metrics = reg
		workerOpts = append(workerOpts, worker.WithMetrics(reg))
	}
	tp, flush, err := tracerFromEnv(ctx, "stepwise", log)
	if err != nil {
		return err
	}
	defer flush()
	pcfg.Tracer = tp
	if tp != nil {
		workerOpts = append(workerOpts, worker.WithTracer(tp))
	}
	p, err := processors.New(pcfg)
	if err != nil {
		return err
	}
	runs := map[string]func(context.Context) error{"processor": p.Run}
	if o.http != "" {
		tokens, err := api.LoadTokens(o.tokensFile)
		if err != nil {
			return err
		}
		srv, err := api.New(api.Config{Addr: o.http, Conn: conn, Logger: log.With("component", "api"),
			Tokens: tokens, InsecureNoAuth: o.noAuth, Metrics: reg, Tracer: tp})
		if err != nil {
			return err
		}
		runs["API"] = srv.Run
	}
	if o.examples {
		w, err := worker.New(append(workerOpts, worker.WithConn(conn), worker.WithLogger(log.With("component", "examples")))...)
		if err != nil {
			return err
		}
		examples.Register(w)
		runs["examples' workers"] = w.Run
	}

	devBanner(os.Stdout, b, set, o)

	// Every part runs until ctx is cancelled (Ctrl-C) or one of them fails;
	// then all stop, and the broker closes last.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for name, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil {
				cancel(fmt.Errorf("%s: %w", name, err))
			} else if ctx.Err() == nil {
				cancel(fmt.Errorf("%s stopped unexpectedly", name))
			}
		}()
	}
	<-ctx.Done()
	log.Info("shutting down")
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

// devBanner tells the user where the broker is and how to use it.
func devBanner(w io.Writer, b *devbroker.Broker, set *topology.Set, o *devOptions) {
	addr := strings.Join(b.Addrs(), ",")
	brokers := ""
	if addr != devbroker.DefaultAddr {
		brokers = " --brokers " + addr
	}
	prefix := ""
	if o.prefix != string(topology.DefaultPrefix) {
		prefix = " --prefix " + o.prefix
	}
	fmt.Fprintf(w, "Stepwise dev is running.\n\n")
	fmt.Fprintf(w, "  Kafka broker:  %s (embedded, Kafka protocol, no TLS/SASL)\n", addr)
	if b.DataDir() != "" {
		fmt.Fprintf(w, "  Data:          %s (kept across restarts; delete it or use --in-memory for a fresh start)\n", b.DataDir())
	} else {
		fmt.Fprintf(w, "  Data:          in memory (gone on exit)\n")
	}
	fmt.Fprintf(w, "  Topic prefix:  %s\n", o.prefix)
	if o.http != "" {
		fmt.Fprintf(w, "  Web UI, API:   http://%s/\n", o.http)
	}
	fmt.Fprintf(w, "  Workflows:\n")
	for _, name := range set.Order {
		fmt.Fprintf(w, "    %-20s from %s\n", name, set.Workflows[name].File)
	}
	queues := set.Queues()
	if o.examples {
		fmt.Fprintf(w, "  Workers:       the examples' handlers run in this process\n")
	}
	fmt.Fprintf(w, "  Task queues:   %s\n", strings.Join(queues, ", "))
	tasks := topology.Prefix(o.prefix).Tasks("<queue>")
	fmt.Fprintf(w, "\nConnect workers in any language to %s: they consume %s and\n", addr, tasks)
	fmt.Fprintf(w, "reply to %s (protocol: schemas/PROTOCOL.md; SDKs for Go, Python and\n", topology.Prefix(o.prefix).Results())
	fmt.Fprintf(w, "TypeScript: README.md, \"Workers\").\n")
	if !o.examples {
		// Only an example's own workflow loaded from a file is served by
		// the examples' workers; any other file needs workers of its own.
		for _, ex := range examples.All() {
			if set.Lookup(ex.Workflow) != nil {
				fmt.Fprintf(w, "Workers of the %s example:\n  stepwise workers --example %s%s%s\n", ex.Name, ex.Name, brokers, prefix)
			}
		}
	}
	fmt.Fprintf(w, "\nStart a request from another shell:\n")
	for _, name := range set.Order {
		fmt.Fprintf(w, "  stepwise start %s --input '{}' --wait%s%s\n", name, brokers, prefix)
	}
	fmt.Fprintf(w, "\nPress Ctrl-C to stop.\n")
}
