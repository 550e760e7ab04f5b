package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepwise-run/stepwise/internal/probe"
	"github.com/stepwise-run/stepwise/metrics"
	"github.com/stepwise-run/stepwise/processors"
	"github.com/stepwise-run/stepwise/processors/machine"
	"github.com/stepwise-run/stepwise/topology"
)

func init() {
	register(command{
		name:    "run",
		summary: "run a processor replica against a Kafka cluster until SIGTERM",
		run:     runRun,
	})
}

// runRun runs one processor replica until the process is signalled, then
// finishes its transaction and leaves the group.
func runRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var cfg processors.Config
	cfg.Conn.RegisterFlags(fs)
	var files fileFlags
	fs.Var(&files, "f", "workflow definition file to apply at start (repeatable; optional once definitions are applied with 'stepwise apply')")
	fs.StringVar(&cfg.ReplicaID, "replica-id", "", "stable, unique id of this replica, e.g. the pod name (default: hostname)")
	fs.DurationVar(&cfg.SessionTimeout, "session-timeout", processors.DefaultSessionTimeout, "group session timeout: how soon a dead replica is noticed")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", processors.DefaultHeartbeat, "group heartbeat interval")
	fs.DurationVar(&cfg.RebalanceTimeout, "rebalance-timeout", processors.DefaultRebalanceTimeout, "group rebalance timeout; also bounds a partition restore")
	fs.DurationVar(&cfg.TxnTimeout, "txn-timeout", processors.DefaultTxnTimeout, "transaction timeout: above the slowest batch; bounds takeover after a crash")
	fs.BoolVar(&cfg.ExplicitTxnPartitions, "explicit-txn-partitions", false, "experimental: register transaction partitions explicitly (faster on Kafka 4.4, see docs/operations.md before using it)")
	fs.DurationVar(&cfg.CommitInterval, "commit-interval", 0, "let one transaction span polls for this long (0: commit every poll)")
	fs.IntVar(&cfg.MaxBatch, "max-batch", processors.DefaultMaxBatch, "records per poll")
	fs.IntVar(&cfg.MaxPayload, "max-payload", processors.DefaultMaxPayload, "largest record produced, bytes (keep under the brokers' max.message.bytes)")
	httpAddr := fs.String("http", "", "address serving /healthz, /readyz and (with --metrics) /metrics, e.g. :9090 (\"\": none)")
	withMetrics := fs.Bool("metrics", false, "export Prometheus metrics at /metrics of --http, with the consumer lag of the processors and every queue's workers")
	fanoutSlice := fs.Int("fanout-slice", machine.DefaultSpawnSlice, "children of a fan-out created per transaction (0: all at once)")
	retention := machine.DefaultRetention
	fs.Func("retention", "how long finished requests are remembered (status, idempotent start, retry) unless their workflow sets retention; e.g. 10m, 24h, 7d (default 10m)", func(v string) error {
		d, err := topology.ParseDuration(v)
		if err == nil && d <= 0 {
			err = fmt.Errorf("must be positive")
		}
		retention = d
		return err
	})
	var level slog.Level
	fs.TextVar(&level, "log-level", slog.LevelInfo, "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: stepwise run [-f FILE...] [flags]\n\n"+
			"Runs one processor replica: applies the -f files to the definitions topic\n"+
			"(as 'stepwise apply' does), follows that topic, joins the processors'\n"+
			"group, restores the state of its partitions and advances requests in\n"+
			"Kafka transactions. Refuses to start when the topics differ from the plan\n"+
			"(see 'stepwise topics').\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: 2}
	}
	if len(files) > 0 {
		set, err := loadDefinitions(files)
		if err != nil {
			return err
		}
		cfg.Set = set
	}
	cfg.MachineOptions = append(cfg.MachineOptions, machine.WithRetention(retention), machine.WithSpawnSlice(*fanoutSlice))
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *withMetrics && *httpAddr == "" {
		return &exitError{code: 2, msg: "--metrics needs --http ADDR to serve them on"}
	}
	var reg *prometheus.Registry
	if *withMetrics {
		reg = metrics.NewRegistry()
		cfg.Metrics = reg
	}
	tp, flush, err := tracerFromEnv(ctx, "stepwise-processor", cfg.Logger)
	if err != nil {
		return err
	}
	defer flush()
	cfg.Tracer = tp
	p, err := processors.New(cfg)
	if err != nil {
		return err
	}
	if *httpAddr == "" {
		return p.Run(ctx)
	}
	mux := http.NewServeMux()
	probe.Register(mux, p.Ready, reg)
	side := []func(context.Context) error{func(ctx context.Context) error { return probe.Serve(ctx, *httpAddr, mux, cfg.Logger) }}
	if reg != nil {
		lag, err := lagCollector(cfg.Conn, cfg.Set, reg, cfg.Logger)
		if err != nil {
			return err
		}
		side = append(side, lag)
	}
	return runAll(ctx, p.Run, side...)
}
