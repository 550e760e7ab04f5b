package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepwise-run/stepwise/internal/bridge"
	"github.com/stepwise-run/stepwise/internal/probe"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/metrics"
	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/worker"
)

func init() {
	register(command{
		name:    "bridge",
		summary: "serve queues of a workflow from RabbitMQ workers (bridge amqp)",
		run:     runBridge,
	})
}

// amqpURLEnv is the variable the original manager's workers read their
// RabbitMQ address from; the bridge takes it as the default of --amqp-url.
const amqpURLEnv = "AMQP_SERVER"

const bridgeUsage = "usage: stepwise bridge amqp -f FILE... --amqp-url URL [--queues Q,...] [flags] (the only bridge is amqp; stepwise bridge amqp -h lists the flags)"

func runBridge(ctx context.Context, args []string) error {
	switch {
	case len(args) > 0 && args[0] == "amqp":
		return runBridgeAMQP(ctx, args[1:])
	case len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help"):
		fmt.Println(bridgeUsage)
		return nil
	default:
		return &exitError{code: 2, msg: bridgeUsage}
	}
}

func runBridgeAMQP(ctx context.Context, args []string) error {
	var (
		conn        = kconn.Default()
		files       fileFlags
		queues      = queueSet{}
		url         string
		replyQueue  string
		concurrency int
		level       slog.Level
	)
	fs := flag.NewFlagSet("bridge amqp", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: stepwise bridge amqp -f FILE... --amqp-url URL [--queues Q,...] [flags]\n\n"+
			"Serves queues of the workflows from RabbitMQ: each task of a bridged queue is\n"+
			"published to the AMQP queue of the same name in the original manager's format,\n"+
			"and each reply is produced as the step's result. The queues are those given\n"+
			"with --queues, else every queue marked 'transport: amqp' in the files.\n"+
			"Stateless: run as many replicas as you like (docs/migrating.md).\n\nFlags:")
		fs.PrintDefaults()
	}
	conn.RegisterFlags(fs)
	fs.Var(&files, "f", "workflow definition file (repeatable)")
	fs.StringVar(&url, "amqp-url", os.Getenv(amqpURLEnv), "RabbitMQ to serve the queues from, amqp://user:password@host:port/vhost (default $"+amqpURLEnv+")")
	fs.Var(queues, "queues", "queues to bridge (comma-separated); default: those marked 'transport: amqp'")
	fs.StringVar(&replyQueue, "reply-queue", "", "this replica's reply queue, stable across its restarts (default <prefix>bridge.replies.<host>-<pid>)")
	fs.IntVar(&concurrency, "concurrency", bridge.DefaultConcurrency, "tasks of each queue in flight on RabbitMQ per replica")
	fs.TextVar(&level, "log-level", slog.LevelInfo, "debug, info, warn or error")
	httpAddr := fs.String("http", "", "address serving /healthz, /readyz and (with --metrics) /metrics, e.g. :9091 (\"\": none)")
	withMetrics := fs.Bool("metrics", false, "export Prometheus metrics at /metrics of --http: the bridge's counters and its queues' worker metrics")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if url == "" {
		return &exitError{code: 2, msg: "no RabbitMQ: give --amqp-url or set " + amqpURLEnv}
	}
	if *withMetrics && *httpAddr == "" {
		return &exitError{code: 2, msg: "--metrics needs --http ADDR to serve them on"}
	}
	set, err := loadDefinitions(files)
	if err != nil {
		return err
	}
	bridged, err := bridgedQueues(set, queues)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	for _, s := range stepsWithoutTimeout(set, bridged) {
		log.Warn("bridged step has no timeout: a worker that acknowledges a task before replying and then dies leaves it waiting for ever; give it one", "step", s)
	}
	workerOpts := []worker.Option{worker.WithConn(conn)}
	var reg *prometheus.Registry
	if *withMetrics {
		reg = metrics.NewRegistry()
		workerOpts = append(workerOpts, worker.WithMetrics(reg))
	}
	opts := []bridge.Option{}
	for q, r := range vhostRoutes(set, bridged) {
		opts = append(opts, bridge.WithRoute(q, r.VHost, r.Queue))
		log.Info("queue of a vhost", "queue", q, "vhost", r.VHost, "amqp_queue", r.Queue)
	}
	b, err := bridge.New(append(opts,
		bridge.WithAMQPURL(url),
		bridge.WithQueues(bridged...),
		bridge.WithReplyQueue(replyQueue),
		bridge.WithPrefix(conn.Prefix),
		bridge.WithConcurrency(concurrency),
		bridge.WithLogger(log),
		bridge.WithWorkerOptions(workerOpts...),
	)...)
	if err != nil {
		return err
	}
	if *httpAddr == "" {
		return b.Run(ctx)
	}
	if reg != nil {
		metrics.RegisterBridge(reg, b.Stats().Counts)
	}
	mux := http.NewServeMux()
	probe.Register(mux, b.Ready, reg)
	return runAll(ctx, b.Run, func(ctx context.Context) error { return probe.Serve(ctx, *httpAddr, mux, log) })
}

// bridgedQueues returns the queues to bridge: those asked for, each of
// which must be a queue of the set, else those the set marks amqp.
func bridgedQueues(set *topology.Set, asked queueSet) ([]string, error) {
	all := set.Queues()
	if len(asked) == 0 {
		marked := set.QueuesOver(topology.TransportAMQP)
		if len(marked) == 0 {
			return nil, errors.New("no queue to bridge: give --queues or mark queues 'transport: amqp' in the files")
		}
		return marked, nil
	}
	var out []string
	for q := range asked {
		if !slices.Contains(all, q) {
			return nil, fmt.Errorf("--queues: no queue %q in the files; their queues are %s", q, strings.Join(all, ", "))
		}
		out = append(out, q)
	}
	slices.Sort(out)
	return out, nil
}

// vhostRoutes routes the bridged queues of workflows served under vhosts
// as the original manager did: a workflow of vhost "/x" has the queue
// "x.<queue>" in Stepwise, which is "<queue>" in the RabbitMQ vhost "/x".
func vhostRoutes(set *topology.Set, queues []string) map[string]bridge.Route {
	out := map[string]bridge.Route{}
	for _, name := range set.Order {
		wf := set.Workflows[name]
		if wf.Namespace == "" {
			continue
		}
		for _, q := range queues {
			if amqpQueue, ok := strings.CutPrefix(q, wf.Namespace+"."); ok {
				out[q] = bridge.Route{VHost: "/" + wf.Namespace, Queue: amqpQueue}
			}
		}
	}
	return out
}

// stepsWithoutTimeout names the steps of the bridged queues that have no
// timeout ("workflow/step").
func stepsWithoutTimeout(set *topology.Set, queues []string) []string {
	var out []string
	var walk func(wf string, g *topology.Graph, seen map[*topology.Task]bool)
	walk = func(wf string, g *topology.Graph, seen map[*topology.Task]bool) {
		for _, st := range g.Steps {
			switch {
			case st.Task != nil:
				if !seen[st.Task] {
					seen[st.Task] = true
					walk(wf, st.Task.Graph, seen)
				}
			case st.Timeout == 0 && slices.Contains(queues, st.Queue):
				out = append(out, wf+"/"+st.Name)
			}
		}
	}
	for _, name := range set.Order {
		walk(name, set.Workflows[name].Graph, map[*topology.Task]bool{})
	}
	return out
}
